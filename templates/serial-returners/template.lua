-- Settings: change them here before `returnflow templates install serial-returners`.
local RETURNS = 3        -- this many returns or more ...
local DAYS = 90          -- ... in this many days

return {
  name = "serial-returners",
  title = "Serial returners",
  description = ("A segment of customers who requested %d or more returns in the last %d days (say, to leave "
    .. "them out of promotions), counted from the default \"Loop Return Created\" metric, one per return.")
    :format(RETURNS, DAYS),
  kind = "segment",
  handlers = nil,      -- nothing to add: the defaults track "Loop Return Created" once per return
  metric = "Loop Return Created",
  fixtures = { "return.created.json", "return.created.gift_return.json", "return.created.store_credit.json" },
  segment = {
    name = "returnflow: Serial returners",
    definition = {
      condition_groups = {
        { conditions = {
          { type = "profile-metric", metric_id = "metric:Loop Return Created", measurement = "count",
            measurement_filter = { type = "numeric", operator = "greater-than-or-equal", value = RETURNS },
            timeframe_filter = { type = "date", operator = "in-the-last", unit = "day", quantity = DAYS } },
        } },
      },
    },
  },
}
