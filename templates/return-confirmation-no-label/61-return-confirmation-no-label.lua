-- Return Confirmation without Shipping Labels: Loop's confirmation for a return that ships with no
-- label (labels are off in the return policy) or that the customer keeps (Keep Item). With a label,
-- return-confirmation sends the confirmation instead, once the label exists.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

return {
  ["return.created"] = function(ret, out)
    if loop.labels_enabled(ret) and not loop.keep_item(ret) then return end
    out:track("Return Confirmation Without Shipping Labels", {
      return_id = loop.return_id(ret),
      order = loop.value(ret.order_name, null),
      status_page_url = loop.value(ret.status_page_url, null),
      keep_item = loop.keep_item(ret),
      return_by = loop.return_by(ret.created_at) or null,
      items = loop.grouped_items(ret),
    })
  end,
}
