-- Return Cancelled: tells the customer their return was cancelled and nothing more will happen with
-- it (no refund, credit or exchange), when Loop moves the return to cancelled.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

return {
  ["return.updated"] = function(ret, out)
    if ret.state ~= "cancelled" then return end
    out:track("Return Cancelled", {
      return_id = loop.return_id(ret),
      order = loop.value(ret.order_name, null),
      status_page_url = loop.value(ret.status_page_url, null),
      items = loop.grouped_items(ret),
    })
  end,
}
