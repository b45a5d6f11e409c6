-- docs/architecture.md stays true: every file or folder path it names exists in the repository,
-- and it names every folder of core/, so a moved file or a new folder cannot leave the map behind.
local h = require "helpers"

local DOC = "docs/architecture.md"

-- Every `...` span of the page that looks like a repository path (core/, docs/, spec/...).
local function named_paths(text)
  local paths, seen = {}, {}
  for span in text:gmatch("`([^`\n]+)`") do
    local path = span:match("^((%a[%w_]*)/[%w_./-]*)$")
    local top = path and path:match("^([^/]+)/")
    if top and (top == "core" or top == "docs" or top == "spec" or top == "scripts" or top == "templates"
                or top == "tools" or top == "fixtures") and not seen[path] then
      seen[path] = true
      paths[#paths + 1] = path
    end
  end
  return paths
end

local function exists(path)
  local ok, _, code = os.rename(path, path)
  return ok or code == 13
end

describe("docs/architecture.md", function()
  local text = h.read(h.root .. "/" .. DOC)

  it("names only files and folders that exist", function()
    local paths = named_paths(text)
    assert.is_true(#paths >= 20, "expected the page to name the files of the path, found " .. #paths)
    local missing = {}
    for _, path in ipairs(paths) do
      if not exists(h.root .. "/" .. path:gsub("/$", "")) then missing[#missing + 1] = path end
    end
    assert.are.same({}, missing)
  end)

  it("names every folder of core/", function()
    local p = assert(io.popen("cd " .. h.quote(h.root) .. " && find core -mindepth 1 -type d | sort"))
    local unnamed = {}
    for dir in p:lines() do
      if not text:find("`" .. dir .. "[/`]") then unnamed[#unnamed + 1] = dir end
    end
    p:close()
    assert.are.same({}, unnamed)
  end)
end)
