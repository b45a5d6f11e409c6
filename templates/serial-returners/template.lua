return {
  name = "serial-returners",
  title = "Serial returners",
  description = "A segment of customers who requested 3 or more returns in the last 90 days, counted from the "
    .. "\"Return Requested\" metric its handler tracks once per return.",
  kind = "segment",
  handlers = "75-serial-returners.lua",
  metric = "Return Requested",
  fixtures = { "return.created.json", "return.created.gift_return.json", "return.created.store_credit.json" },
  segment = {
    name = "returnflow: Serial returners",
    definition = {
      condition_groups = {
        { conditions = {
          { type = "profile-metric", metric_id = "metric:Return Requested", measurement = "count",
            measurement_filter = { type = "numeric", operator = "greater-than-or-equal", value = 3 },
            timeframe_filter = { type = "date", operator = "in-the-last", unit = "day", quantity = 90 } },
        } },
      },
    },
  },
}
