-- Return Reminder: on day 21 of a return that ships with a label, reminds the customer that it
-- expires in 7 days, as a Klaviyo flow on the default "Loop Return Expiring" (scheduled by the
-- defaults at day 21 and cancelled once the parcel moves or the return is closed or cancelled).
-- This file adds the items the email lists, grouped per product.
local loop = require "returnflow.loop"

return {
  changes = {
    ["Loop Return Expiring"] = { properties = {
      items = function(ret) return loop.grouped_items(ret) end,
    } },
  },
}
