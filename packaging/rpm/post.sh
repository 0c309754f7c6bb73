# Makes systemd see new or changed units; running services are not restarted (see
# packaging/debian/postinst).
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi
