--- returnflow: what scripts get from `require "returnflow"`.
-- @module returnflow
local json = require "returnflow.json"

local M = {}

--- JSON null as scripts see it (the same value as cjson.null).
M.null = json.null
--- Marks a table (or makes a new one) as a JSON array, so an empty one encodes as [].
M.array = json.array
--- Marks a table (or makes a new one) as a JSON object, so an empty one encodes as {}.
M.object = json.object
--- True if the value encodes as a JSON array.
M.is_array = json.is_array
--- JSON text of a value: keys sorted, exact, errors name the path. Returns nil, message on error.
M.encode = json.encode
--- Value of JSON text (tables marked array/object). Returns nil, message on error.
M.decode = json.decode

return M
