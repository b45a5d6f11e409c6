return {
  name = "high-value-returners",
  title = "High-value returners",
  description = "A segment of customers whose processed returns add up to 500 or more (store currency) in the last "
    .. "365 days, summed from the value of the \"Return Processed\" metric its handler tracks.",
  kind = "segment",
  handlers = "78-high-value-returners.lua",
  metric = "Return Processed",
  fixtures = { "return.updated.closed.json", "return.closed.json" },
  segment = {
    name = "returnflow: High-value returners",
    definition = {
      condition_groups = {
        { conditions = {
          { type = "profile-metric", metric_id = "metric:Return Processed", measurement = "sum",
            measurement_filter = { type = "numeric", operator = "greater-than-or-equal", value = 500 },
            timeframe_filter = { type = "date", operator = "in-the-last", unit = "day", quantity = 365 } },
        } },
      },
    },
  },
}
