# Sourced by the scripts that start services: `on_exit CMD` registers what to undo, and every
# registered command runs, last first, when the script exits, whatever the exit.
cleanups=()
on_exit() { cleanups+=("$1"); }
stop_all() {
  local i
  for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do eval "${cleanups[i]}" || true; done
}
trap stop_all EXIT
