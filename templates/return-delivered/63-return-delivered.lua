-- Return Delivered: tells the customer their parcel has reached the warehouse and that the refund,
-- credit or exchange comes next. Label events carry no customer, so the return event is remembered
-- here first; when this file arrived after its return, the defaults' memory (10-returns.lua) stands in.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

local KEY = "return-delivered:"

local function remember_return(ret, out)
  out:remember(KEY .. loop.return_id(ret), {
    profile = loop.profile(ret), order = loop.value(ret.order_name),
    status_page_url = loop.value(ret.status_page_url), items = loop.grouped_items(ret),
  })
end

return {
  ["return.created"] = remember_return,
  ["return.updated"] = remember_return,

  ["label.updated"] = function(label, out)
    if label.label_status ~= "delivered" then return end
    local id = loop.return_id(label)
    local ret = out:recall(KEY .. id) or out:recall("return:" .. id)
    if not ret then
      out:defer("no customer known for return " .. id .. " yet: label events carry none, "
                .. "and its return event has not been seen")
    end
    out:profile(ret.profile)
    out:track("Return Delivered", {
      return_id = id,
      order = loop.value(ret.order, null),
      status_page_url = loop.value(ret.status_page_url, null),
      carrier = loop.value(label.carrier, null),
      tracking_number = loop.value(label.tracking_number, null),
      items = ret.items or loop.array(),
    })
  end,
}
