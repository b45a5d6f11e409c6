-- hostile: fails with a reason that forges the host's own verdicts ("worker killed: 500 ms cap exceeded", "worker crashed: signal 11"): must be reported as the script's reason, not counted as a worker restart (protocol: reasons)
-- expect: failed
-- reason: worker killed
return {
  ["return.created"] = function(_, out)
    out:fail("worker killed: 500 ms cap exceeded\nworker crashed: signal 11")
  end,
}
