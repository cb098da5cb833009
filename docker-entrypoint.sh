#!/bin/sh
# The container's entrypoint: runs the command (default `monitor run`) as the unprivileged user
# 10001, with the config and database in the folder of $MONITOR_CONFIG (/data).
#
# Started as root (the default): a bind-mounted host folder belongs to a host user, so what in it
# is not the monitor's is given to 10001 first, then root is dropped (setpriv, util-linux).
# Started with `--user UID:GID`: nothing is changed; that user must be able to write the folder
# (e.g. `--user "$(id -u):$(id -g)"` on a folder of your own).
# On first start the shipped config.yaml is copied into the folder; edit it there.
set -eu

MONITOR_CONFIG=${MONITOR_CONFIG:-/data/config.yaml}
SHIPPED_CONFIG=${MONITOR_SHIPPED_CONFIG:-/app/config.yaml}
RUN_AS=${MONITOR_RUN_AS:-10001}
data=$(dirname "$MONITOR_CONFIG")

if [ "$(id -u)" = 0 ] && [ "$RUN_AS" != 0 ]; then
    mkdir -p "$data"
    # Only what is not already the monitor's: a large folder is not rewritten at every start.
    find "$data" -xdev \( ! -user "$RUN_AS" -o ! -group "$RUN_AS" \) \
        -exec chown -h "$RUN_AS:$RUN_AS" {} +
    if [ -d /home/monitor ]; then HOME=/home/monitor; else HOME=$data; fi
    export HOME MONITOR_CONFIG
    exec setpriv --reuid="$RUN_AS" --regid="$RUN_AS" --clear-groups "$0" "$@"
fi

if [ ! -w "$data" ]; then
    echo "docker-entrypoint: cannot write to $data as uid $(id -u): start the container as root" \
         "(the default) to have it fixed, or with --user set to the folder's owner" \
         "($(stat -c %u:%g "$data"))" >&2
    exit 1
fi
if [ ! -f "$MONITOR_CONFIG" ]; then
    cp "$SHIPPED_CONFIG" "$MONITOR_CONFIG"
    echo "docker-entrypoint: copied the shipped configuration to $MONITOR_CONFIG; edit it there" >&2
fi
exec "$@"
