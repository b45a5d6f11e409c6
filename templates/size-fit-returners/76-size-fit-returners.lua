-- Size and fit returners: tracks "Size Or Fit Return" for a return with an item whose parent reason
-- is "didn't fit" (Loop's "Item didn't fit"), the metric the "Size and fit returners" segment counts
-- over the last 30 days. The properties say which products did not fit and why.
local loop = require "returnflow.loop"

local function did_not_fit(parent_reason)
  if type(parent_reason) ~= "string" then return false end
  local reason = parent_reason:lower():gsub("\u{2019}", "'")    -- a typographic apostrophe, too
  return reason:find("didn't fit", 1, true) ~= nil or reason:find("did not fit", 1, true) ~= nil
end

return {
  ["return.created"] = function(ret, out)
    local products, reasons = loop.array(), loop.array()
    for _, line in ipairs(loop.items(ret)) do
      if did_not_fit(line.parent_return_reason) then
        products[#products + 1] = loop.value(line.title, "")
        reasons[#reasons + 1] = loop.value(line.return_reason, "")
      end
    end
    if #products == 0 then return end
    out:track("Size Or Fit Return", {
      return_id = loop.return_id(ret),
      order = loop.value(ret.order_name),
      products = products,
      reasons = reasons,
    })
  end,
}
