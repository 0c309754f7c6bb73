# On removal ($1 = 0, not an upgrade): stop the services before their binary goes away.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
  systemctl stop mooncake-store.service mooncake-master.service mooncake-metadata.service \
    >/dev/null 2>&1 || :
fi
