#!/bin/sh
# The official image's environment settings, then the server as the rabbitmq user.
set -eu
if [ -n "${RABBITMQ_ERLANG_COOKIE:-}" ]; then
    printf '%s' "$RABBITMQ_ERLANG_COOKIE" > /var/lib/rabbitmq/.erlang.cookie
    chmod 600 /var/lib/rabbitmq/.erlang.cookie
fi
unset RABBITMQ_ERLANG_COOKIE
if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then
    {
        echo "default_user = $RABBITMQ_DEFAULT_USER"
        echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-}"
    } > /etc/rabbitmq/conf.d/11-default-user.conf
fi
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
if [ "$1" = rabbitmq-server ]; then
    shift
    export HOME=/var/lib/rabbitmq
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi
exec "$@"
