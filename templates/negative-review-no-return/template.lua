-- Settings: change them here before `returnflow templates install negative-review-no-return`.
-- REVIEW_METRIC is the metric your reviews app publishes in Klaviyo when a customer submits a review,
-- RATING the property of it that holds the stars (1 to 5), and MAX_RATING the highest rating that
-- counts as negative. Shipped: Okendo's, "Created Okendo Review" with "Rating" (Okendo's help centre,
-- "Okendo data sent to Klaviyo"). Klaviyo Reviews, Yotpo and the other apps publish theirs under
-- names of their own: look yours up in Klaviyo under Analytics > Metrics (and its properties there).
-- Install finds the metric in the account and never creates it.
local REVIEW_METRIC = "Created Okendo Review"
local RATING = "Rating"
local MAX_RATING = 2
local DAYS = 60

return {
  name = "negative-review-no-return",
  title = "Negative review, no return",
  description = ("A segment of customers who left a review of %d stars or fewer (\"%s\", a setting) in the last "
    .. "%d days but requested no return in that time (the default \"Loop Return Created\"): customers to "
    .. "reach before they give up on the product."):format(MAX_RATING, REVIEW_METRIC, DAYS),
  kind = "segment",
  handlers = nil,      -- nothing to add: the review metric is your reviews app's, the return metric the defaults'
  metric = "Loop Return Created",
  external_metrics = { REVIEW_METRIC },   -- another integration's: install finds it, never creates it
  fixtures = { "return.created.json" },
  segment = {
    name = "returnflow: Negative review, no return",
    definition = {
      condition_groups = {
        { conditions = {
          { type = "profile-metric", metric_id = "metric:" .. REVIEW_METRIC, measurement = "count",
            measurement_filter = { type = "numeric", operator = "greater-than-or-equal", value = 1 },
            timeframe_filter = { type = "date", operator = "in-the-last", unit = "day", quantity = DAYS },
            metric_filters = {
              { property = RATING, filter = { type = "numeric", operator = "less-than-or-equal", value = MAX_RATING } },
            } },
        } },
        { conditions = {
          { type = "profile-metric", metric_id = "metric:Loop Return Created", measurement = "count",
            measurement_filter = { type = "numeric", operator = "equals", value = 0 },
            timeframe_filter = { type = "date", operator = "in-the-last", unit = "day", quantity = DAYS } },
        } },
      },
    },
  },
}
