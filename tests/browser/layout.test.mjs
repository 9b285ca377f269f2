// Unit test of the web client's grid layout (web-client/tiles.js): for 1 to
// 16 tiles the chosen column count makes every tile fit the space, and is
// the one that makes tiles largest.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bestLayout } from '../../web-client/tiles.js';

const GAP = 8;

function fits(n, cols, tileWidth, width, height, aspect) {
  const rows = Math.ceil(n / cols);
  const usedWidth = cols * tileWidth + (cols - 1) * GAP;
  const usedHeight = rows * (tileWidth / aspect) + (rows - 1) * GAP;
  return usedWidth <= width + 0.01 && usedHeight <= height + 0.01;
}

describe('grid layout', () => {
  it('fits 1 to 16 tiles on a 1264x560 desktop stage, as large as possible', () => {
    const [w, h, aspect] = [1264, 560, 16 / 9];
    const expected = { 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 9: 3, 12: 4, 16: 4 };
    for (let n = 1; n <= 16; n++) {
      const { cols, tileWidth } = bestLayout(n, w, h, aspect);
      assert.ok(fits(n, cols, tileWidth, w, h, aspect), `${n} tiles in ${cols} columns overflow`);
      for (let other = 1; other <= n; other++) {
        const alt = bestLayout(1, (w - GAP * (other - 1)) / other, Infinity, aspect).tileWidth;
        const rows = Math.ceil(n / other);
        const altWidth = Math.min(alt, ((h - GAP * (rows - 1)) / rows) * aspect);
        assert.ok(altWidth <= tileWidth + 0.01, `${n} tiles: ${other} columns would be larger`);
      }
      if (expected[n]) assert.equal(cols, expected[n], `${n} tiles`);
      assert.ok(tileWidth >= 200, `${n} tiles are ${Math.round(tileWidth)} px wide`);
    }
  });

  it('uses one or two columns of square tiles on a 374x680 phone stage', () => {
    const [w, h, aspect] = [374, 680, 1];
    assert.equal(bestLayout(1, w, h, aspect).cols, 1);
    assert.equal(bestLayout(2, w, h, aspect).cols, 1);
    assert.equal(bestLayout(5, w, h, aspect).cols, 2);
    for (let n = 1; n <= 16; n++) {
      const { cols, tileWidth } = bestLayout(n, w, h, aspect);
      assert.ok(fits(n, cols, tileWidth, w, h, aspect), `${n} tiles overflow`);
      assert.ok(tileWidth >= 80, `${n} tiles are ${Math.round(tileWidth)} px wide`);
    }
  });
});
