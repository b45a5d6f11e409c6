-- Settings: change them here before `returnflow templates install size-fit-returners`.
-- REASONS are Loop's parent return reasons as your return policy names them (Loop's default for a
-- size problem is "Item didn't fit"); the segment holds whoever returned an item for one of them.
local REASONS = { "Item didn't fit" }
local DAYS = 30

return {
  name = "size-fit-returners",
  title = "Returned for a reason (size and fit)",
  description = ("A segment of customers who returned an item for one of the reasons set in its template.lua "
    .. "(shipped: \"%s\") in the last %d days, counted from the default \"Loop Return Created\" metric's "
    .. "return_reason_parents."):format(REASONS[1], DAYS),
  kind = "segment",
  handlers = nil,      -- nothing to add: "Loop Return Created" carries every item's parent reason
  metric = "Loop Return Created",
  fixtures = { "return.created.json" },
  segment = {
    name = "returnflow: Size and fit returners",
    definition = {
      condition_groups = {
        { conditions = {
          { type = "profile-metric", metric_id = "metric:Loop Return Created", measurement = "count",
            measurement_filter = { type = "numeric", operator = "greater-than-or-equal", value = 1 },
            timeframe_filter = { type = "date", operator = "in-the-last", unit = "day", quantity = DAYS },
            metric_filters = {
              { property = "return_reason_parents", filter = { type = "list", operator = "contains-any", value = REASONS } },
            } },
        } },
      },
    },
  },
}
