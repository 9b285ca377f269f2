#!/usr/bin/env bash
# Runs Janus (the Debian package) with only what the comparison needs: the
# VideoRoom plugin and the plain HTTP API on 127.0.0.1:${JANUS_HTTP_PORT:-8088}
# (base path /janus), ICE only on the addresses or interfaces in
# ${JANUS_ICE_ENFORCE} (required; Janus never gathers on loopback, so
# loadtest/compare-janus.sh gives it a veth address inside a private network
# namespace), no STUN server.
# The configuration is written to a temporary directory; /etc/janus is not
# touched. Usage: loadtest/janus/janus.sh [extra janus flags]
set -euo pipefail

port="${JANUS_HTTP_PORT:-8088}"
enforce="${JANUS_ICE_ENFORCE:?set JANUS_ICE_ENFORCE to the address Janus may use for ICE}"
lib=/usr/lib/x86_64-linux-gnu/janus
dir="$(mktemp -d /tmp/janus-conf.XXXXXX)"
trap 'rm -rf "$dir"' EXIT

cat >"$dir/janus.jcfg" <<CONF
general: {
	configs_folder = "$dir"
	plugins_folder = "$lib/plugins"
	transports_folder = "$lib/transports"
	events_folder = "$lib/events"
	loggers_folder = "$lib/loggers"
	debug_level = 3
	admin_secret = "unused"
	protected_folders = ["/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sbin", "/sys", "/usr", "/var"]
}
certificates: {
}
media: {
	rtp_port_range = "20000-40000"
}
nat: {
	nice_debug = false
	ice_enforce_list = "$enforce"
	ignore_mdns = true
}
plugins: {
	disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so"
}
transports: {
	disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so"
}
loggers: {
	disable = "libjanus_jsonlog.so"
}
events: {
	broadcast = false
	disable = "libjanus_gelfevh.so,libjanus_mqttevh.so,libjanus_nanomsgevh.so,libjanus_rabbitmqevh.so,libjanus_sampleevh.so,libjanus_wsevh.so"
}
CONF

cat >"$dir/janus.transport.http.jcfg" <<CONF
general: {
	json = "plain"
	base_path = "/janus"
	http = true
	port = $port
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_http = false
	admin_https = false
}
CONF

cat >"$dir/janus.plugin.videoroom.jcfg" <<CONF
general: {
}
CONF

janus --config="$dir/janus.jcfg" --configs-folder="$dir" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
wait "$pid"
