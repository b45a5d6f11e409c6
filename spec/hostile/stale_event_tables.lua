-- hostile: keeps the event, a table of it and a coroutine reading it past its handler, and reads them on the next events (a pooled document reused by a later event)
-- expect: harmless
-- The mapper's events share one document a state (core/json/json_event.c): a table kept from an
-- earlier event keeps what was built of it (what was read, and the members the state's read plan
-- built with them: none of the fields below, which no script here reads) and raises on anything
-- more, never reading the later event's tape. The later events must map exactly as without this file.
local kept, kept_items, kept_reader

local function stale_reads_fail()
  assert(kept.id ~= nil and kept.trigger == "return.created", "a field read in its own call stays")
  assert(#kept_items > 0, "an array read in its own call stays")
  for _, read in ipairs {
    function() return kept.status_page_url end,
    function() for _ in pairs(kept) do end end,
    function() return kept_items[1].sku end,
  } do
    local ok, err = pcall(read)
    assert(not ok and tostring(err):find("no longer readable", 1, true), "a stale read gave: " .. tostring(err))
  end
  if kept_reader then                           -- the coroutine raises once, and is dead after
    local ok, err = pcall(kept_reader)
    kept_reader = nil
    assert(not ok and tostring(err):find("no longer readable", 1, true), "a stale read gave: " .. tostring(err))
  end
end

return {
  ["return.created"] = function(ev)
    kept, kept_items = ev, ev.line_items
    assert(ev.id and ev.trigger)
    kept_reader = coroutine.wrap(function()
      local e = ev
      coroutine.yield(e.state)
      return e.tracking_number
    end)
    kept_reader()
  end,
  ["*"] = function(ev)
    if kept and ev.trigger ~= "return.created" then stale_reads_fail() end
  end,
}
