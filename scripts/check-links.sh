#!/usr/bin/env bash
# Checks that every relative link in the Markdown files under DIR leads to a
# file that exists (anchors are not checked) and that none goes up a folder:
# a document links only to its own folder and those below it, so that a link
# holds wherever the folder is read (a clone, an installed copy, a browser),
# and names other documents by their path in the repository instead.
# Usage: scripts/check-links.sh DIR
set -euo pipefail
root="$(cd "$1" && pwd)"
status=0
while IFS= read -r -d '' doc; do
  dir="$(dirname "$doc")"
  # Markdown links and images: ](target) with no scheme.
  while IFS= read -r target; do
    path="${target%%#*}"
    [ -z "$path" ] && continue
    case "$path" in http://* | https://* | mailto:*) continue ;; esac
    case "$path" in
      /* | ../* | */../*)
        echo "${doc#"$root"/}: $target goes up a folder" >&2
        status=1
        continue
        ;;
    esac
    resolved="$(realpath -m "$dir/$path")"
    [ -e "$resolved" ] || { echo "${doc#"$root"/}: $target does not exist" >&2; status=1; }
  done < <(grep -o '](\([^)]*\))' "$doc" | sed 's/^](\(.*\))$/\1/')
done < <(find "$root" -name '*.md' -not -path '*/node_modules/*' -not -path '*/build*/*' \
  -not -path '*/.git/*' -print0)
exit "$status"
