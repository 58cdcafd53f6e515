#!/bin/sh
# rootfs.sh DEST PACKAGE... - copy the installed PACKAGEs and everything they
# depend on (Pre-Depends and Depends, recursively; no Recommends) into DEST.
#
# Runs in a build stage of docker/python.Dockerfile and capture.Dockerfile, whose
# final stage is FROM scratch + DEST: the image holds what the programs need and
# nothing of the base's package tooling (apt, dpkg, perl-base, coreutils...).
# Python byte-code that Debian compiled at install time (not in the packages'
# file lists) is copied along, so the read-only containers need not compile.
# Packages that only maintainer scripts use (INSTALL_ONLY) are left out unless
# asked for by name: python3-minimal depends on dpkg, tcpdump on adduser.
# POSIX sh, dpkg-query, awk and tar: what every Debian image has.
set -eu

INSTALL_ONLY="adduser debconf debianutils dpkg init-system-helpers passwd perl-base"

[ $# -ge 2 ] || { echo "usage: $0 DEST PACKAGE..." >&2; exit 2; }
dest="$1"
shift
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Installed packages and what each provides (virtual names, e.g. python3-cffi-backend-api-min).
dpkg-query -W -f '${db:Status-Status} ${Package} ${Provides}\n' \
    | awk '$1 == "installed" { print $2, $2; for (i = 3; i <= NF; i++) { gsub(/[,(].*/, "", $i); if ($i != "" && $i !~ /^[=<>0-9]/) print $i, $2 } }' \
    >"$work/provides"

# Breadth-first over the dependency graph. For "a | b" the first alternative
# that is installed (itself or through a provider) is taken.
printf '%s\n' "$@" >"$work/todo"
: >"$work/closure"
while [ -s "$work/todo" ]; do
    : >"$work/next"
    while read -r pkg; do
        grep -Fqx "$pkg" "$work/closure" && continue
        case " $INSTALL_ONLY " in
            *" $pkg "*) case " $* " in *" $pkg "*) ;; *) continue ;; esac ;;
        esac
        real="$(awk -v want="$pkg" '$1 == want { print $2; exit }' "$work/provides")"
        [ -n "$real" ] || { echo "rootfs.sh: $pkg is not installed" >&2; exit 1; }
        grep -Fqx "$real" "$work/closure" && continue
        echo "$real" >>"$work/closure"
        dpkg-query -W -f '${Pre-Depends}, ${Depends}\n' "$real" | tr ',' '\n' \
            | awk -v provides="$work/provides" '
                BEGIN { while ((getline line < provides) > 0) { split(line, f, " "); have[f[1]] = 1 } }
                {
                    n = split($0, alt, "|")
                    for (i = 1; i <= n; i++) {
                        name = alt[i]; sub(/^[ \t]+/, "", name); sub(/[ \t(].*/, "", name); sub(/:.*/, "", name)
                        if (name != "" && have[name]) { print name; break }
                    }
                }' >>"$work/next"
    done <"$work/todo"
    sort -u "$work/next" >"$work/todo"
done

# Every path the packages own, plus the __pycache__ directories Debian's
# py3compile filled beside their modules. /. and missing (path-excluded) paths skipped.
sort "$work/closure" | while read -r pkg; do dpkg-query -L "$pkg"; done \
    | awk '$0 != "/." && !seen[$0]++' >"$work/owned"
while read -r path; do
    if [ -e "$path" ] || [ -L "$path" ]; then
        printf '%s\n' "$path"
        case "$path" in
            *.py)
                dir="${path%/*}/__pycache__"
                base="${path##*/}"
                for pyc in "$dir/${base%.py}".*.pyc; do
                    [ -e "$pyc" ] && printf '%s\n%s\n' "$dir" "$pyc"
                done
                ;;
        esac
    fi
done <"$work/owned" | awk '!seen[$0]++' >"$work/paths"

mkdir -p "$dest"
# /bin, /lib... are symlinks into /usr (merged /usr): create them first and keep them.
for link in /bin /sbin /lib /lib32 /lib64 /libx32; do
    [ -L "$link" ] || continue
    target="$(readlink "$link")"
    mkdir -p "$dest/${target#/}"
    cp -P "$link" "$dest$link"
done
sed "s|^/||" "$work/paths" >"$work/members"
tar -C / -cf - --no-recursion -T "$work/members" | tar -xf - -C "$dest" --keep-directory-symlink
echo "rootfs.sh: $(wc -l <"$work/closure") packages into $dest: $(sort "$work/closure" | tr '\n' ' ')" >&2
