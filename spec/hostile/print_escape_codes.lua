-- hostile: prints terminal escape codes, forged log lines and megabytes to the host's log
-- expect: harmless
return { ["return.created"] = function(ev, out)
  print("\27[2J\27[31mFORGED\nreturnflow: level=error tenant=other msg=forged line\r")
  print(("y"):rep(6 << 20))
end }
