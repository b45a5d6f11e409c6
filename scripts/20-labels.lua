-- Label events: "Loop Label Created" (the trigger of Loop's "Return Confirmation" email) and
-- "Loop Label Updated". Loop's label webhooks carry no customer, so the profile and the return's
-- properties come from what 10-returns.lua remembered (the label's own values replace the return's:
-- carrier, tracking, label); a label that arrives before its return waits for it (out:defer).
local loop = require "returnflow.loop"

local null = loop.null

-- Once the parcel moves, the day-21 reminder and day-28 expiry must not go out.
local MOVING = { in_transit = true, out_for_delivery = true, delivered = true }

local function label_event(metric)
  return function(label, out)
    local id = loop.return_id(label)
    local ret = out:recall("return:" .. id)
    if not ret then
      out:defer("no customer known for return " .. id .. " yet: label events carry none, "
                .. "and its return event has not been seen")
    end
    out:profile(ret.profile)
    local props = loop.label_properties(label, ret.properties)
    props.status_page_url = loop.value(ret.status_page_url, null)   -- present, null when unknown
    props.order = loop.value(ret.order, null)
    props.return_by = loop.value(loop.return_by(ret.created_at), null)
    props.labels_enabled = loop.value(ret.labels_enabled, null)
    props.keep_item = loop.value(ret.keep_item, null)
    out:track(metric, props)
    if MOVING[label.label_status] then
      out:cancel("expiring:" .. id)
      out:cancel("expired:" .. id)
    end
  end
end

return {
  ["label.created"] = label_event("Loop Label Created"),
  ["label.updated"] = label_event("Loop Label Updated"),
}
