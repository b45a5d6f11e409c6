-- hostile: print() of forged log lines, terminal escapes, NUL, CR and one 4 MB line: script output on its way to the operator's log must be escaped and cut (message escaping; a worker's stderr)
-- expect: harmless
return {
  ["return.created"] = function()
    print("\n2026-12-02T06:00:00Z returnflow[1]: tenant bystander: delivered 0 of 1200, key=pk_live_xxx\r")
    print("\27[2J\27[H\27]0;owned\7", "\0", "\255\254")
    print(("P"):rep(4 << 20))
  end,
}
