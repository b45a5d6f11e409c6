-- Return Confirmation (with label): the email Loop sends once the carrier label exists, rebuilt as a
-- Klaviyo flow. Tracks "Return Confirmation" on label.created with what the email shows: the items,
-- the label, the status page and the day the return expires (created + 28 days, Loop's window).
-- Label events carry no customer, so the return event is remembered here first; when this file
-- arrived after its return, the defaults' memory (10-returns.lua) stands in, without the items.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

local KEY = "return-confirmation:"

local function remember_return(ret, out)
  out:remember(KEY .. loop.return_id(ret), {
    profile = loop.profile(ret), created_at = ret.created_at, order = loop.value(ret.order_name),
    status_page_url = loop.value(ret.status_page_url), items = loop.grouped_items(ret),
  })
end

return {
  ["return.created"] = remember_return,
  ["return.updated"] = remember_return,

  ["label.created"] = function(label, out)
    local id = loop.return_id(label)
    local ret = out:recall(KEY .. id) or out:recall("return:" .. id)
    if not ret then
      out:defer("no customer known for return " .. id .. " yet: label events carry none, "
                .. "and its return event has not been seen")
    end
    out:profile(ret.profile)
    out:track("Return Confirmation", {
      return_id = id,
      order = loop.value(ret.order, null),
      return_by = loop.return_by(ret.created_at) or null,
      status_page_url = loop.value(ret.status_page_url, null),
      label_url = loop.value(label.label_url, null),
      carrier = loop.value(label.carrier, null),
      tracking_number = loop.value(label.tracking_number, null),
      items = ret.items or loop.array(),
    })
  end,
}
