-- hostile: string.gsub over 8 MB with a replacement table at the head of a 1,990-long __index chain of tables: every match walks the chain in C (~1.6e10 hops), with no Lua instruction (watchdog: pure-C long call through table metamethods)
-- expect: failed
-- reason: cap
return {
  ["return.created"] = function()
    local head = {}
    local cur = head
    for _ = 1, 1990 do local nxt = {} setmetatable(cur, { __index = nxt }) cur = nxt end
    local s = ("a"):rep(8 << 20)
    s:gsub(".", head)
    error("replaced", 0)
  end,
}
