# Sourced by bin/up: run a set of processes, start again one that dies, stop them all on exit.
#
#   run_web() { exec gunicorn ...; }     # one function per process, named run_<name>
#   supervise web worker beat            # returns once Ctrl-C or SIGTERM stopped them all
#
# A process that exits (crashed, killed, out of memory) is started again after 1 s, then 2, 4 ...
# up to SUPERVISE_MAX_DELAY seconds (60) while it keeps dying; one that had run for
# SUPERVISE_STABLE seconds (60) starts again after 1 s. The other processes keep running
# meanwhile, and each exit and restart is one line on the console.

supervise() {
  local names=("$@") pids=() started=() due=() delay=()
  local max=${SUPERVISE_MAX_DELAY:-60} stable=${SUPERVISE_STABLE:-60}
  local i status ran stopping=""
  trap 'stopping=1' INT TERM
  for i in "${!names[@]}"; do
    "run_${names[$i]}" & pids[i]=$!
    started[i]=$SECONDS delay[i]=1 due[i]=0
  done
  while [ -z "$stopping" ]; do
    sleep 1 & wait $! || true  # a trapped signal ends this wait at once
    [ -z "$stopping" ] || break
    local running=" $(jobs -pr | tr '\n' ' ') "  # bash's own table: no pid reused by others
    for i in "${!names[@]}"; do
      if [ -z "${pids[i]}" ]; then
        if (( SECONDS >= due[i] )); then
          "run_${names[$i]}" & pids[i]=$!
          started[i]=$SECONDS
          echo "supervise: ${names[i]} started again (pid ${pids[i]})" >&2
        fi
      elif [[ $running != *" ${pids[i]} "* ]]; then
        status=0
        wait "${pids[i]}" 2>/dev/null || status=$?
        ran=$((SECONDS - started[i]))
        if (( ran >= stable )); then delay[i]=1; fi
        echo "supervise: ${names[i]} (pid ${pids[i]}) exited with status $status after" \
             "${ran}s; starting it again in ${delay[i]}s, the others keep running" >&2
        due[i]=$((SECONDS + delay[i])) pids[i]=""
        delay[i]=$((delay[i] * 2 > max ? max : delay[i] * 2))
      fi
    done
  done
  trap - INT TERM
  echo "supervise: stopping ${names[*]}" >&2
  for i in "${!names[@]}"; do
    [ -z "${pids[i]}" ] || kill -TERM "${pids[i]}" 2>/dev/null || true
  done
  wait || true
}
