#!/usr/bin/env bash
# The corpus's words against Hunspell's dictionaries (CTest corpus_spelling): every word the
# English sentences use must be in en_US, every word the Spanish ones use in es_ES. The words
# come from `minigpt corpus --words LANG`, so objects, predicates and agreeing forms
# ("niñas", "felices") are checked as well as verb forms. scripts/setup installs hunspell,
# hunspell-en-us and hunspell-es.
# usage: spelling_test.sh MINIGPT
set -uo pipefail
minigpt=$1
if ! command -v hunspell >/dev/null; then
  echo "spelling_test: hunspell is not installed (scripts/setup installs it)" >&2
  exit 1
fi
status=0
for pair in en:en_US es:es_ES; do
  lang=${pair%%:*} dict=${pair#*:}
  words=$("$minigpt" corpus --words "$lang") || { echo "spelling_test: minigpt corpus --words $lang failed" >&2; exit 1; }
  count=$(printf '%s\n' "$words" | grep -c .)
  # A check that sees nothing proves nothing.
  if [ "$count" -lt 100 ]; then
    echo "spelling_test: only $count $lang words; expected hundreds" >&2
    status=1
    continue
  fi
  unknown=$(printf '%s\n' "$words" | hunspell -d "$dict" -i UTF-8 -l | sort -u)
  if [ -n "$unknown" ]; then
    echo "spelling_test: $lang words not in Hunspell's $dict: $(echo $unknown)" >&2
    status=1
  else
    echo "spelling_test: all $count $lang words are in Hunspell's $dict"
  fi
done
# And the check can fail: a misspelling must be caught.
if [ -z "$(printf 'wrked\n' | hunspell -d en_US -i UTF-8 -l)" ] ||
   [ -z "$(printf 'trabajè\n' | hunspell -d es_ES -i UTF-8 -l)" ]; then
  echo "spelling_test: hunspell accepted a misspelled word; the check proves nothing" >&2
  status=1
fi
exit $status
