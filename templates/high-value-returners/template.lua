-- Settings: change them here before `returnflow templates install high-value-returners`.
local TOTAL = 500        -- processed returns adding up to this much (store currency) or more ...
local DAYS = 365         -- ... in this many days

return {
  name = "high-value-returners",
  title = "High-value returners",
  description = ("A segment of customers whose closed returns add up to %d or more (store currency) in the last %d "
    .. "days, summed from the value (the return's total) of the default \"Loop Return Status Updated\" "
    .. "events whose return_status is closed: cancelled returns never count."):format(TOTAL, DAYS),
  kind = "segment",
  handlers = nil,      -- nothing to add: the closed status update carries the return's total as its value
  metric = "Loop Return Status Updated",
  fixtures = { "return.updated.closed.json" },
  segment = {
    name = "returnflow: High-value returners",
    definition = {
      condition_groups = {
        { conditions = {
          { type = "profile-metric", metric_id = "metric:Loop Return Status Updated", measurement = "sum",
            measurement_filter = { type = "numeric", operator = "greater-than-or-equal", value = TOTAL },
            timeframe_filter = { type = "date", operator = "in-the-last", unit = "day", quantity = DAYS },
            metric_filters = {
              { property = "return_status", filter = { type = "string", operator = "equals", value = "closed" } },
            } },
        } },
      },
    },
  },
}
