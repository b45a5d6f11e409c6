return {
  name = "size-fit-returners",
  title = "Size and fit returners",
  description = "A segment of customers who returned an item because it didn't fit (Loop's parent reason) in the "
    .. "last 30 days, counted from the \"Size Or Fit Return\" metric its handler tracks.",
  kind = "segment",
  handlers = "76-size-fit-returners.lua",
  metric = "Size Or Fit Return",
  fixtures = { "return.created.json" },
  segment = {
    name = "returnflow: Size and fit returners",
    definition = {
      condition_groups = {
        { conditions = {
          { type = "profile-metric", metric_id = "metric:Size Or Fit Return", measurement = "count",
            measurement_filter = { type = "numeric", operator = "greater-than-or-equal", value = 1 },
            timeframe_filter = { type = "date", operator = "in-the-last", unit = "day", quantity = 30 } },
        } },
      },
    },
  },
}
