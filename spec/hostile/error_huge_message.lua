-- hostile: a 6 MiB error message with terminal escape codes and forged log lines
-- expect: failed
-- reason: FORGED
return { ["return.created"] = function(ev, out)
  error("\27[2J\27[31mFORGED\nreturnflow: level=error tenant=other msg=forged line\n" .. ("x"):rep(6 << 20))
end }
