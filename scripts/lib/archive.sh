# Sourced by scripts that fetch from Debian's archive, to take it from where this machine's own apt
# sources do (never from a host name of ours).

# debian_archive: the repository URI that this machine's apt sources give for its release's
# suite (e.g. the mirror bookworm comes from); nothing when no source names it.
debian_archive() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 'Created-By: Packages' 2>/dev/null |
    awk -v c="$codename" '$1 == c { print $2; exit }'
}
