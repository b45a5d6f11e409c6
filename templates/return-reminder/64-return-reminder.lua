-- Return Reminder: on day 21 of a return that ships with a label, reminds the customer that it expires
-- in 7 days (Loop's "Return Expiring"). Scheduled when the return is created; cancelled as soon as the
-- parcel moves or the return is closed or cancelled, so only returns still waiting get it.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

local DAY = 86400
local KEY = "return-reminder:"
local MOVING = { in_transit = true, out_for_delivery = true, delivered = true }

local function cancel_reminder(ev, out)
  out:cancel(KEY .. loop.return_id(ev))
end

return {
  ["return.created"] = function(ret, out)
    if not loop.labels_enabled(ret) or loop.keep_item(ret) then return end
    out:schedule(KEY .. loop.return_id(ret), 21 * DAY, "Return Reminder", {
      return_id = loop.return_id(ret),
      order = loop.value(ret.order_name, null),
      return_by = loop.return_by(ret.created_at) or null,
      status_page_url = loop.value(ret.status_page_url, null),
      items = loop.grouped_items(ret),
    })
  end,

  ["label.updated"] = function(label, out)
    if MOVING[label.label_status] then cancel_reminder(label, out) end
  end,

  ["return.updated"] = function(ret, out)
    if ret.state == "cancelled" or ret.state == "closed" then cancel_reminder(ret, out) end
  end,

  ["return.closed"] = cancel_reminder,
}
