-- hostile: 1500 cancels in one event, over the 1000 a worker may return (serve kills a worker that sends more): map and serve must agree, failing the event with a clear reason rather than mapping it in one and killing a worker in the other (protocol: many results)
-- expect: failed
-- reason: cancel
return {
  ["return.created"] = function(_, out)
    for i = 1, 1500 do out:cancel("rt92:" .. i) end
  end,
}
