-- Serial returners: tracks "Return Requested" once per return, the metric the "Serial returners"
-- segment counts (3 or more in the last 90 days). Its own metric, so the segment works with or
-- without the default scripts; returns are counted when requested, cancelled ones included.
local loop = require "returnflow.loop"

return {
  ["return.created"] = function(ret, out)
    out:track("Return Requested", {
      return_id = loop.return_id(ret),
      order = loop.value(ret.order_name),
      item_count = #loop.items(ret),
    }, { value = loop.money(ret.total) })
  end,
}
