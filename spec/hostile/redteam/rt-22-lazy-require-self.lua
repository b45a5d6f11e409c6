-- hostile: requires a file of its own folder for the first time at event time (a file open after the worker's seccomp filter is on), then once more under a dotted name: must fail cleanly or work, never kill the worker (seccomp reach)
-- expect: harmless
return {
  ["return.created"] = function()
    pcall(require, "50-hostile")
    pcall(require, "00-benign")
    pcall(require, "nonexistent.deep.module")
  end,
}
