-- hostile: one innocent debugging print() at event time (a write to stderr, which a worker's seccomp filter may not allow): the event must map, a print must never cost a worker or a dead letter (seccomp reach)
-- expect: harmless
return {
  ["return.created"] = function(ev) print("debug: mapping return", ev.id) end,
}
