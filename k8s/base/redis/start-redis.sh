#!/bin/sh
# Start redis-server with the ACL users of users.acl, each with the sha256 of its password read
# from one secret file per user (compose: /run/secrets/redis-<user>, k8s: the redis-acl Secret
# mounted as a directory). Fails closed: a user without a password file, or with an empty one,
# stops the start-up instead of leaving that user open. The built ACL file holds hashes only
# and lives on tmpfs/emptyDir, never in the data volume.
set -eu
rules=${REDIS_ACL_RULES:-/etc/redis-acl/users.acl}
secrets=${REDIS_ACL_SECRETS:-/run/secrets}
prefix=${REDIS_ACL_SECRET_PREFIX-redis-}
out=${REDIS_ACL_FILE:-/tmp/redis-acl/users.acl}
umask 077
mkdir -p "$(dirname "$out")"
: > "$out.tmp"
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in ''|'#'*) continue ;; esac
  # `user <name> <rules...>`: the name without touching "$@" (redis-server's arguments)
  name=${line#user }
  name=${name%% *}
  if [ "$name" = default ]; then
    printf '%s\n' "$line" >> "$out.tmp"
    continue
  fi
  file="$secrets/$prefix$name"
  [ -r "$file" ] || { echo "start-redis: no password file $file for ACL user $name" >&2; exit 1; }
  password=$(tr -d '\r\n' < "$file")
  [ -n "$password" ] || { echo "start-redis: empty password in $file for ACL user $name" >&2; exit 1; }
  hash=$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)
  printf '%s #%s\n' "$line" "$hash" >> "$out.tmp"
done < "$rules"
mv "$out.tmp" "$out"
# compose starts this as root (to read the secret files); drop to the image's redis user the way
# its own entrypoint does. Kubernetes already runs it as that user.
if [ "$(id -u)" = 0 ] && command -v su-exec >/dev/null 2>&1; then
  chown redis "$(dirname "$out")" "$out"
  exec su-exec redis redis-server --aclfile "$out" "$@"
fi
exec redis-server --aclfile "$out" "$@"
