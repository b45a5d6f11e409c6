-- Return Expired: on day 28 of a return that ships with a label and never moved, tells the customer
-- the label has expired, as a Klaviyo flow on the default "Loop Return Expired" (scheduled by the
-- defaults at day 28, cancelled once the parcel moves or the return is closed or cancelled). This
-- file adds the day it expired and the items, grouped per product.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

return {
  changes = {
    ["Loop Return Expired"] = { properties = {
      expired_on = function(ret) return loop.return_by(ret.created_at) or null end,
      items = function(ret) return loop.grouped_items(ret) end,
    } },
  },
}
