-- Return Confirmation (with label): the email Loop sends once the carrier label exists, as a Klaviyo
-- flow on the default "Loop Label Created" (the metric Loop's own flow uses). The default event
-- already carries the order, the status page, the carrier, the tracking number and return_by; this
-- file adds what the email shows beside them: the label's URL and the items, grouped per product.
-- Label events carry no customer and no items, so the return's items are remembered here first.
local loop = require "returnflow.loop"

local null = loop.null     -- an optional property the email reads is sent as null, never left out

local KEY = "return-confirmation:"

local function remember_items(ret, out)
  out:remember(KEY .. loop.return_id(ret), { items = loop.grouped_items(ret) })
end

return {
  ["return.created"] = remember_items,
  ["return.updated"] = remember_items,

  changes = {
    ["Loop Label Created"] = { properties = {
      label_url = function(label) return loop.value(label.label_url, null) end,
      items = function(label, _, out)
        local ret = out:recall(KEY .. loop.return_id(label))
        return ret and ret.items or loop.array()
      end,
    } },
  },
}
