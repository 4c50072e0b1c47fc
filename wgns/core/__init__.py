"""The layer both sides stand on: names and values, the configuration, the
per-tunnel record, paths, safe reading and the one writer, the systemd
client, namespaces and what netlink tells. It imports nothing above it."""
