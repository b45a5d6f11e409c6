-- Return Confirmation without Shipping Labels: Loop's confirmation for a return that ships with no
-- label (labels are off in the return policy) or that the customer keeps (Keep Item), as a Klaviyo
-- flow on the default "Loop Return Created" filtered on labels_enabled = false or keep_item = true
-- (Loop's own filter). This file adds the items the email lists, grouped per product.
local loop = require "returnflow.loop"

return {
  changes = {
    ["Loop Return Created"] = { properties = {
      items = function(ret) return loop.grouped_items(ret) end,
    } },
  },
}
