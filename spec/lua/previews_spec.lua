-- The email previews a merchant would show (make previews, docs/templates/previews): every character
-- of the fixtures' names gets a real glyph (健二 needs a CJK font; a missing one is drawn as an empty
-- box and fails nothing else), each picture is cropped to its email, and every flow email has a logo
-- slot that email.logo_url fills.
local h = require "helpers"

local GLYPHS = h.root .. "/spec/tools/preview_glyphs.py"
local PNG = h.root .. "/tools/png.py"

-- Chromium and the fonts are part of `make deps`: a missing one fails these specs (never a skip).
local function has_chromium() return (select(3, h.sh("command -v chromium"))) == 0 end
local function need_chromium()
  assert(has_chromium(), "chromium is not installed: make deps (tools/deps.sh) installs it")
end

-- The flow templates' names, from the catalogue.
local function flows()
  local out = h.run({ "templates", "list", "--templates", h.root .. "/templates" })
  local names = {}
  for name, kind in out:gmatch("\n([%w-]+)%s+(%w+)") do
    if kind == "flow" then names[#names + 1] = name end
  end
  return names
end

-- Every flow's preview (its first fixture) rendered into a temporary folder; returns the HTML files.
local function previews()
  local dir = h.tempdir()
  local files = {}
  for _, name in ipairs(flows()) do
    local _, err, code = h.run({ "templates", "preview", name, "--templates", h.root .. "/templates", "--out", dir })
    assert.equal(0, code, name .. ": " .. err)
    files[#files + 1] = dir .. "/" .. name .. ".html"
  end
  return files
end

local function glyphs(files, render)
  local args = { h.quote(h.python), h.quote(GLYPHS) }
  if render then args[#args + 1] = "--render" end
  for _, f in ipairs(files) do args[#args + 1] = h.quote(f) end
  return h.sh(table.concat(args, " "))
end

describe("email previews", function()
  after_each(h.cleanup)

  it("show the fixtures' CJK names: the store credit email greets 健二", function()
    local html = previews()
    local text = ""
    for _, f in ipairs(html) do text = text .. h.read(f) end
    assert.truthy(text:find("Hi 健二,", 1, true))
  end)

  it("have a font for every character they show (fontconfig)", function()
    local out, err, code = glyphs(previews(), false)
    assert.equal(0, code, out .. err)
    assert.truthy(out:find("健", 1, true), out)
  end)

  it("draw every character they show as a glyph, not a missing-glyph box (chromium)", function()
    need_chromium()
    local out, err, code = glyphs(previews(), true)
    assert.equal(0, code, out .. err)
    assert.truthy(out:find("(rendered)", 1, true), out)
  end)

  it("the glyph check fails on a character no font has, naming it", function()
    -- U+10FFFD: the last private-use code point; no Debian font draws it (U+E001 was, until a
    -- glyph font came with promtool's package)
    local page = h.tempfile("<p>Hi Kenji \u{10FFFD}, and 健二</p>", ".html")
    need_chromium()
    local out, _, code = glyphs({ page }, true)
    assert.equal(1, code, out)
    assert.truthy(out:find("U%+10FFFD .* has no font"), out)
    assert.truthy(out:find("U%+10FFFD .* missing%-glyph box"), out)
    assert.falsy(out:find("U+5065", 1, true), out)          -- 健 has its glyph
  end)

  it("the glyph check sees 健 drawn as a box when only a font without CJK is there", function()
    local fonts = "/usr/share/fonts/truetype/dejavu"
    assert(io.open(fonts .. "/DejaVuSans.ttf"), "fonts-dejavu-core is not installed: make deps installs it")
    need_chromium()
    local dir = h.tempdir()
    h.write(dir .. "/fonts.conf", string.format('<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd">'
      .. "<fontconfig><dir>%s</dir><cachedir>%s/cache</cachedir></fontconfig>", fonts, dir))
    local page = h.tempfile("<p>Hi 健二</p>", ".html")
    local out, _, code = h.sh(string.format("FONTCONFIG_FILE=%s %s %s %s %s", h.quote(dir .. "/fonts.conf"),
                                            h.quote(h.python), h.quote(GLYPHS), "--render",
                                            h.quote(page)))
    assert.equal(1, code, out)
    assert.truthy(out:find("U%+5065 健 has no font"), out)
    assert.truthy(out:find("U%+5065 健 is drawn as a missing%-glyph box"), out)
  end)

  it("are cropped to the email: no empty page below it, 24 px of background around it", function()
    for _, name in ipairs(flows()) do
      local file = h.root .. "/docs/templates/previews/" .. name .. ".png"
      local out, err, code = h.sh(string.format([[%s -c '
import sys; sys.path.insert(0, sys.argv[1])
import png
w, h, ch, rows = png.read(sys.argv[2])
box = png.content_box(w, h, ch, rows)
print(w, h, box[0], box[1], w - box[2], h - box[3])' %s %s]], h.quote(h.python), h.quote(h.root .. "/tools"), h.quote(file)))
      assert.equal(0, code, file .. ": " .. err)
      local w, height, left, top, right, bottom = out:match("^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+)")
      assert.truthy(w, out)
      assert.truthy(tonumber(w) <= 700, file .. " is " .. w .. " px wide")
      for _, margin in ipairs({ left, top, right, bottom }) do
        assert.truthy(tonumber(margin) <= 24, file .. ": margins " .. out)
      end
      assert.truthy(tonumber(height) < 1100, file .. " is " .. height .. " px high")
    end
  end)

  it("crop a screenshot to its content (tools/png.py)", function()
    local dir = h.tempdir()
    h.sh_ok(string.format([[%s -c '
import sys; sys.path.insert(0, sys.argv[1])
import png
rows = [bytes([9, 9, 9]) * 100 for _ in range(80)]
rows[30] = bytes([9, 9, 9]) * 40 + bytes([200, 0, 0]) * 10 + bytes([9, 9, 9]) * 50
png.write(sys.argv[2], 100, 80, 3, rows)' %s %s]], h.quote(h.python), h.quote(h.root .. "/tools"), h.quote(dir .. "/in.png")))
    local out = h.sh_ok(string.format("%s %s crop %s %s 5", h.quote(h.python), h.quote(PNG), h.quote(dir .. "/in.png"),
                                      h.quote(dir .. "/out.png")))
    assert.truthy(out:find("20x11", 1, true), out)            -- 10x1 of content, 5 px around it
  end)

  it("have a logo slot: the store's initial and name, or the image at email.logo_url", function()
    local folder = h.tempdir()
    h.sh_ok("cp -r " .. h.quote(h.root .. "/templates/return-confirmation") .. " " .. h.quote(folder .. "/"))
    local dir = h.tempdir()
    local _, err, code = h.run({ "templates", "preview", "return-confirmation", "--templates", folder, "--out", dir })
    assert.equal(0, code, err)
    local html = h.read(dir .. "/return-confirmation.html")
    assert.truthy(html:find(">A</td>", 1, true), "the initial of Acme Apparel")
    assert.truthy(html:find("ACME APPAREL", 1, true))
    local tl = folder .. "/return-confirmation/template.lua"
    h.write(tl, (h.read(tl):gsub("logo_url = nil,", 'logo_url = "https://cdn.example.com/acme-logo.png",')))
    _, err, code = h.run({ "templates", "preview", "return-confirmation", "--templates", folder, "--out", dir })
    assert.equal(0, code, err)
    html = h.read(dir .. "/return-confirmation.html")
    assert.truthy(html:find('<img src="https://cdn.example.com/acme-logo.png" height="40" alt="Acme Apparel"', 1, true), html)
    assert.falsy(html:find(">A</td>", 1, true))
    h.write(tl, (h.read(tl):gsub('logo_url = "[^"]*"', 'logo_url = "javascript:alert(1)"')))
    local out
    out, err, code = h.run({ "templates", "lint", "return-confirmation", "--templates", folder })
    assert.equal(1, code, out .. err)
    assert.truthy(err:find("email.logo_url must be an http(s) URL", 1, true), err)
  end)
end)
