-- hostile: 100,000 small tracks in one event: ~100k requests to encode, frame and store after the handlers returned, in C, past any hook (protocol: many results; watchdog: long host work)
-- expect: failed
-- reason: [cl][ai][pm]i?t?:
-- (cap: when the state's memory runs out first; limit: when the handlers' 100,000 actions fit the
-- cap and the host refuses the 100,001 requests, as it does since it writes their bodies itself)
local props = { n = 1 }
return {
  ["return.created"] = function(_, out)
    for _ = 1, 100000 do out:track("Flood", props) end
  end,
}
