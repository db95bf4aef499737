# Sourced by the protocol tests. engine_gone NAME: the stand-in engines write their pid to
# ./pid; that process must be gone (killed and reaped) shortly after props exits. Prints a
# FAIL line naming NAME and returns 1 when it is not.
engine_gone() {
  [[ -s pid ]] || return 0
  for _ in $(seq 20); do kill -0 "$(cat pid)" 2>/dev/null || return 0; sleep 0.1; done
  echo "FAIL $1: the engine (pid $(cat pid)) outlived props"
  return 1
}
