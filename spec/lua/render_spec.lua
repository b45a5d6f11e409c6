-- returnflow.render: the Klaviyo template subset our notification emails use, rendered locally for
-- previews, and the variables a template reads, for the lint that checks them against the mapping.
package.path = "core/lua/?.lua;" .. package.path
local render = require "returnflow.render"
local h = require "helpers"

-- Compiles `source` (failing the spec on a compile error) and renders it with `context`.
local function rendered(source, context, opts)
  local tpl, err = render.compile(source, "test.html")
  assert(tpl, err)
  return tpl:render(context or {}, opts)
end

local function text(source, context, opts)
  return (rendered(source, context, opts or { escape = false }))
end

local function compile_error(source)
  local tpl, err = render.compile(source, "return-confirmation/email.html")
  assert.is_nil(tpl)
  return err
end

local function variables(source)
  return assert(render.compile(source, "test.html")):variables()
end

describe("render", function()
  describe("{{ }} output", function()
    it("renders dotted paths and copies the text around tags verbatim", function()
      local out = text("Hi {{ person.first_name }},\n  your return to {{ event.destination.city }}!\n",
        { person = { first_name = "María" }, event = { destination = { city = "Seattle" } } })
      assert.equal("Hi María,\n  your return to Seattle!\n", out)
    end)

    it("indexes lists with 0-based numeric segments, as Django does", function()
      local context = { event = { product_names = { "Tee", "Cap" } } }
      assert.equal("Tee/Cap", text("{{ event.product_names.0 }}/{{ event.product_names.1 }}", context))
    end)

    it("prints integers bare and floats as Python does, 118.0 keeping its point", function()
      local out = text("{{ event.a }} {{ event.b }} {{ event.c }} {{ event.d }}",
        { event = { a = 12, b = 118.8, c = 118.0, d = 0.1 + 0.2 } })
      assert.equal("12 118.8 118.0 0.30000000000000004", out)
    end)

    it("prints booleans as True/False and a list as its items joined by ', '", function()
      local out = text("{{ event.gift }} {{ event.ok }} [{{ event.names }}]",
        { event = { gift = false, ok = true, names = { "Tee", 2, true } } })
      assert.equal("False True [Tee, 2, True]", out)
    end)

    it("renders string and number literals", function()
      assert.equal("hi 42 -1.5", text("{{ 'hi' }} {{ 42 }} {{ -1.5 }}"))
    end)

    it("accepts spaces around '|' as Klaviyo's editor writes them", function()
      local context = { person = { ["Tier Name"] = "gold" } }
      assert.equal("GOLD", text("{{ person | lookup:'Tier Name' | upper }}", context))
    end)
  end)

  describe("missing and null", function()
    it("renders a missing variable as '' and lists each missing path once, sorted", function()
      local out, missing = rendered("[{{ person.first_name }}{{ event.return_by }}{{ person.first_name }}]",
        { event = {}, person = {} })
      assert.equal("[]", out)
      assert.same({ "event.return_by", "person.first_name" }, missing)
    end)

    it("renders null as '' without listing it, also for a path through a null", function()
      local null = h.null
      local out, missing = rendered("[{{ event.edited_at }}{{ event.middle.name }}]",
        { event = { edited_at = null, middle = null } }, { null = null })
      assert.equal("[]", out)
      assert.same({}, missing)
    end)

    it("does not list a variable an {% if %} tests or a default covers, but lists the same one used bare", function()
      local _, missing = rendered("{% if event.label_url %}x{% endif %}{{ person.first_name|default:'there' }}"
        .. "{{ event.note|default_if_none:'' }}", { event = {}, person = {} })
      assert.same({}, missing)
      _, missing = rendered("{% if event.label_url %}{% endif %}{{ event.label_url }}{{ event.note|upper|default:'' }}",
        { event = {} })
      assert.same({ "event.label_url", "event.note" }, missing)
    end)

    it("lists a path through a value that is not an object as missing", function()
      local _, missing = rendered("{{ event.total.amount }}", { event = { total = "118.80" } })
      assert.same({ "event.total.amount" }, missing)
    end)

    it("renders a real Loop return, decoded with its nulls, and misses only what is absent", function()
      local ret = h.fixture("return.created.json")
      local source = "{{ event.customer_detail.first_name }}|{{ event.customer_detail.middle_name }}|"
        .. "{{ event.total|floatformat:2 }}|{{ event.created_at|date:'M j' }}|{{ event.nope }}"
      local out, missing = rendered(source, { event = ret }, { null = h.null, escape = false })
      assert.equal("María||118.80|Oct 2|", out)
      assert.same({ "event.nope" }, missing)
    end)
  end)

  describe("escaping", function()
    local context = { event = { note = [[Tom & "Jerry" <b>'s</b>]] } }

    it("escapes & < > \" ' in HTML mode", function()
      local out = rendered("{{ event.note }}", context, { escape = true })
      assert.equal("Tom &amp; &quot;Jerry&quot; &lt;b&gt;&#x27;s&lt;/b&gt;", out)
    end)

    it("escapes by default when no opts are given", function()
      assert.equal("a &lt; b", (rendered("{{ x }}", { x = "a < b" })))
    end)

    it("leaves a value marked |safe as it is", function()
      assert.equal([[Tom & "Jerry" <b>'s</b>]], (rendered("{{ event.note|safe }}", context)))
    end)

    it("escapes nothing in text mode, for subjects and text parts", function()
      assert.equal([[Tom & "Jerry" <b>'s</b>]], (rendered("{{ event.note }}", context, { escape = false })))
    end)

    it("leaves a literal string default unescaped, as Django does, but escapes a variable one", function()
      local out = rendered("{{ a|default:'&nbsp;' }}|{{ a|default:b }}", { b = "<i>" })
      assert.equal("&nbsp;|&lt;i&gt;", out)
    end)

    it("escapes each item of |join but not its separator", function()
      local out = rendered("{{ names|join:'<br>' }}", { names = { "a&b", "<c>" } })
      assert.equal("a&amp;b<br>&lt;c&gt;", out)
    end)

    it("escapes again after a filter that does not keep safety (upper after safe)", function()
      assert.equal("&lt;B&gt;", (rendered("{{ x|safe|upper }}", { x = "<b>" })))
    end)
  end)

  describe("filters", function()
    it("default replaces missing, empty, false and 0 and keeps a present value", function()
      local out = text("{{ a|default:'-' }}{{ e.b|default:'-' }}{{ e.c|default:'-' }}{{ e.d|default:'-' }}{{ e.f|default:'-' }}",
        { e = { b = "", c = false, d = 0, f = "x" } })
      assert.equal("----x", out)
    end)

    it("default_if_none replaces null and missing but keeps ''", function()
      local null = h.null
      local out = text("[{{ e.a|default_if_none:'n' }}][{{ e.b|default_if_none:'n' }}][{{ e.c|default_if_none:'n' }}]",
        { e = { a = null, b = "" } }, { null = null, escape = false })
      assert.equal("[n][][n]", out)
    end)

    it("floatformat without an argument shows one decimal only if needed", function()
      assert.equal("34.2 34 34.3 34.0",
        text("{{ 34.23234|floatformat }} {{ 34.0|floatformat }} {{ 34.26|floatformat }} {{ 34.04|floatformat }}"))
    end)

    it("floatformat:N shows exactly N decimals, also for numeric text", function()
      assert.equal("34.232 34.000 118.80 14080.00",
        text("{{ 34.23234|floatformat:3 }} {{ 34|floatformat:3 }} {{ '118.8'|floatformat:2 }} {{ e.t|floatformat:2 }}",
          { e = { t = "14080" } }))
    end)

    it("floatformat:-N shows N decimals unless the value is whole", function()
      assert.equal("34.232 34 34.260",
        text("{{ 34.23234|floatformat:'-3' }} {{ 34.0|floatformat:-3 }} {{ 34.26|floatformat:-3 }}"))
    end)

    it("floatformat rounds half up on the decimal digits and never prints -0", function()
      assert.equal("1.01 2.68 10.0 0.0 -1.5",
        text("{{ 1.005|floatformat:2 }} {{ 2.675|floatformat:2 }} {{ 9.96|floatformat }} {{ -0.01|floatformat }} "
          .. "{{ -1.45|floatformat }}"))
    end)

    it("floatformat reads exponents, in text and in small floats", function()
      assert.equal("150 0.000010", text("{{ '1.5e2'|floatformat }} {{ 0.00001|floatformat:6 }}"))
    end)

    it("floatformat gives '' for text that is not a number and the value for a bad argument", function()
      assert.equal("[][12.5]", text("[{{ 'n/a'|floatformat }}][{{ 12.5|floatformat:'x' }}]"))
    end)

    it("date formats an ISO date with month and day names", function()
      local context = { event = { return_by = "2026-10-30" } }
      assert.equal("October 30, 2026 | Fri, Oct. 30 | Friday 30.10.26 | Oct",
        text("{{ event.return_by|date:'F j, Y' }} | {{ event.return_by|date:'D, N j' }} | "
          .. "{{ event.return_by|date:'l j.n.y' }} | {{ event.return_by|date:'M' }}", context))
    end)

    it("date reads a UTC timestamp with seconds", function()
      assert.equal("2026-03-02 04:01:09",
        text("{{ t|date:'Y-m-d H:i:s' }}", { t = "2026-03-02T04:01:09Z" }))
    end)

    it("date shows a timestamp with an offset and fractions in UTC", function()
      assert.equal("12:11:09", text("{{ t|date:'H:i:s' }}", { t = "2026-10-02T14:11:09.123+02:00" }))
    end)

    it("date reads an epoch number as seconds since 1970 UTC", function()
      assert.equal("2026-10-02 14:11", text("{{ t|date:'Y-m-d H:i' }}", { t = 1790950260 }))
    end)

    it("date's P and A give Django's 12-hour forms, midnight and noon", function()
      local out = text("{{ a|date:'P' }}|{{ b|date:'P' }}|{{ c|date:'P' }}|{{ d|date:'P' }}|{{ a|date:'A' }}",
        { a = "2026-10-02T14:30:00Z", b = "2026-10-02T03:00:00Z", c = "2026-10-02T00:00:00Z", d = "2026-10-02T12:00:00Z" })
      assert.equal("2:30 p.m.|3 a.m.|midnight|noon|PM", out)
    end)

    it("date defaults to 'N j, Y', treats a backslash as an escape, and gives '' for a non-date", function()
      assert.equal("Sept. 3, 2026|Y=2026|",
        text([[{{ d|date }}|{{ d|date:'\Y=Y' }}|{{ x|date:'Y' }}]], { d = "2026-09-03", x = "soon" }))
    end)

    it("lookup reads keys with spaces, by literal or by variable", function()
      local context = { event = { ["Return By"] = "Friday" }, key = "Return By" }
      assert.equal("Friday Friday", text("{{ event|lookup:'Return By' }} {{ event|lookup:key }}", context))
    end)

    it("upper and lower change case", function()
      assert.equal("TEE tee", text("{{ x|upper }} {{ x|lower }}", { x = "TeE" }))
    end)

    it("title capitalises words as Django does", function()
      assert.equal("They're 1st O'Neil-Smith", text("{{ x|title }}", { x = "THEY'RE 1st o'neil-smith" }))
    end)

    it("capfirst capitalises only the first letter", function()
      assert.equal("Return label ready", text("{{ x|capfirst }}", { x = "return label ready" }))
    end)

    it("length counts list items, UTF-8 characters, and 0 for missing", function()
      assert.equal("3 6 0", text("{{ l|length }} {{ s|length }} {{ m|length }}", { l = { 1, 2, 3 }, s = "Müller" }))
    end)

    it("join joins list items with the separator", function()
      assert.equal("Tee, Cap, 7|Tee / Cap / 7", text("{{ l|join:', ' }}|{{ l|join:' / ' }}", { l = { "Tee", "Cap", 7 } }))
    end)

    it("first and last take list items or characters", function()
      assert.equal("Tee Hat M r", text("{{ l|first }} {{ l|last }} {{ s|first }} {{ s|last }}",
        { l = { "Tee", "Cap", "Hat" }, s = "María Gr" }))
    end)

    it("striptags removes tags and keeps their text", function()
      assert.equal("Hello world", text("{{ x|striptags }}", { x = "<p>Hello <b>world</b></p>" }))
    end)

    it("truncatechars cuts to N characters including the ellipsis, counting UTF-8 characters", function()
      assert.equal("Hell…|Müll…|short", text("{{ a|truncatechars:5 }}|{{ b|truncatechars:5 }}|{{ c|truncatechars:5 }}",
        { a = "Hello world", b = "Müller-Lüdenscheidt", c = "short" }))
    end)

    it("add adds integers (dropping decimals, as Klaviyo documents), joins texts, and gives '' otherwise", function()
      assert.equal("7 3 ab []", text("{{ 5|add:2 }} {{ 1.5|add:2 }} {{ 'a'|add:'b' }} [{{ 'a'|add:2 }}]"))
    end)

    it("pluralize picks a suffix by count, for numbers, numeric text and lists", function()
      local out = text("item{{ one|pluralize }} item{{ two|pluralize }} box{{ two|pluralize:'es' }} "
        .. "cherr{{ one|pluralize:'y,ies' }} cherr{{ list|pluralize:'y,ies' }}", { one = "1", two = 2, list = { 1, 2 } })
      assert.equal("item items boxes cherry cherries", out)
    end)

    it("yesno maps true, false and null, and null to no with two choices", function()
      local null = h.null
      local out = text("{{ t|yesno:'a,b,c' }}{{ f|yesno:'a,b,c' }}{{ n|yesno:'a,b,c' }}{{ n|yesno:'a,b' }}{{ t|yesno }}",
        { t = true, f = false, n = null }, { null = null, escape = false })
      assert.equal("abcbyes", out)
    end)

    it("urlencode quotes all but letters, digits, _.-~ and /", function()
      assert.equal("a%20b/c%26d%3Fe~f", text("{{ x|urlencode }}", { x = "a b/c&d?e~f" }))
      assert.equal("a%2Fb", text("{{ x|urlencode:'' }}", { x = "a/b" }))
    end)
  end)

  describe("{% if %}", function()
    local source = "{% if event.state == 'open' %}open{% elif event.state == 'closed' %}closed{% else %}other{% endif %}"

    it("renders the first branch whose condition holds, else the else branch", function()
      assert.equal("open", text(source, { event = { state = "open" } }))
      assert.equal("closed", text(source, { event = { state = "closed" } }))
      assert.equal("other", text(source, { event = { state = "cancelled" } }))
    end)

    it("treats missing, null, false, 0, '' and empty lists as false, '0' and lists with items as true", function()
      local null = h.null
      local context = { e = { n = null, f = false, z = 0, s = "", l = {}, zero = "0", full = { 1 } } }
      local out = text("{% for k in keys %}{% if e|lookup:k %}T{% else %}F{% endif %}{% endfor %}",
        { e = context.e, keys = { "missing", "n", "f", "z", "s", "l", "zero", "full" } }, { null = null, escape = false })
      assert.equal("FFFFFFTT", out)
    end)

    it("binds and tighter than or", function()
      assert.equal("yes", text("{% if a or b and c %}yes{% else %}no{% endif %}", { a = true, b = false, c = false }))
    end)

    it("binds not tighter than and", function()
      assert.equal("no", text("{% if not a and b %}yes{% else %}no{% endif %}", { a = false, b = false }))
    end)

    it("compares with == != < > <= >=, never equating a number with its text", function()
      local out = text("{% if n == 2 %}a{% endif %}{% if n != 3 %}b{% endif %}{% if n < 3 %}c{% endif %}"
        .. "{% if n > 1 %}d{% endif %}{% if n <= 2 %}e{% endif %}{% if n >= 3 %}X{% endif %}{% if s == 2 %}X{% endif %}"
        .. "{% if s < 3 %}X{% endif %}", { n = 2, s = "2" })
      assert.equal("abcde", out)
    end)

    it("tests membership with in and not in, in lists and in text", function()
      local out = text("{% if 'Cap' in l %}a{% endif %}{% if 'Hat' not in l %}b{% endif %}{% if 'Hat' in l %}X{% endif %}"
        .. "{% if 'ship' in s %}c{% endif %}", { l = { "Tee", "Cap" }, s = "shipped" })
      assert.equal("abc", out)
    end)

    it("applies filters to operands", function()
      local source_if = "{% if event.product_names|length > 1 %}items{% else %}item{% endif %}"
      assert.equal("items", text(source_if, { event = { product_names = { "a", "b" } } }))
      assert.equal("item", text(source_if, { event = { product_names = { "a" } } }))
    end)

    it("compares with None for null and missing values", function()
      local null = h.null
      assert.equal("nm", text("{% if a == None %}n{% endif %}{% if b == None %}m{% endif %}{% if c == None %}X{% endif %}",
        { a = null, c = "" }, { null = null, escape = false }))
    end)
  end)

  describe("{% for %}", function()
    it("iterates a list in order with forloop.counter, counter0, revcounter, first and last", function()
      local out = text("{% for n in l %}{{ forloop.counter }}{{ forloop.counter0 }}{{ forloop.revcounter }}"
        .. "{% if forloop.first %}F{% endif %}{% if forloop.last %}L{% endif %}{{ n }};{% endfor %}", { l = { "a", "b", "c" } })
      assert.equal("103Fa;212b;321Lc;", out)
    end)

    it("renders {% empty %} for an empty or missing list", function()
      local source = "{% for n in l %}{{ n }}{% empty %}none{% endfor %}"
      assert.equal("none", text(source, { l = {} }))
      assert.equal("none", text(source, {}))
      assert.equal("ab", text(source, { l = { "a", "b" } }))
    end)

    it("gives forloop of the innermost loop and keeps the outer loop variable in reach", function()
      local out = text("{% for o in outer %}{% for i in o.items %}{{ o.name }}{{ forloop.counter }}{{ i }} {% endfor %}"
        .. "{% endfor %}", { outer = { { name = "A", items = { "x", "y" } }, { name = "B", items = { "z" } } } })
      assert.equal("A1x A2y B1z ", out)
    end)

    it("reports a field missing from a list item under its source path", function()
      local out, missing = rendered("{% for item in event.items %}{{ item.title }}{{ item.sku }},{% endfor %}",
        { event = { items = { { title = "Tee", sku = "T1" }, { title = "Cap" } } } })
      assert.equal("TeeT1,Cap,", out)
      assert.same({ "event.items[].sku" }, missing)
    end)
  end)

  describe("comments", function()
    it("drops {# #} and {% comment %} blocks, leaving their contents unparsed", function()
      assert.equal("a\nbc", text("a{# note #}\nb{% comment %}{% bogus %}{{ x|nope }}{% endcomment %}c"))
    end)
  end)

  describe("variables()", function()
    it("lists every path the template reads, sorted and unique, from output, conditions and filter arguments", function()
      assert.same({ "event.fallback", "event.order", "event.return_by", "person.first_name" },
        variables("{{ person.first_name }}{% if event.order %}{{ event.return_by|default:event.fallback }}{% endif %}"
          .. "{{ person.first_name }}"))
    end)

    it("resolves a loop variable to the list it comes from", function()
      assert.same({ "event.product_names" },
        variables("{% for name in event.product_names %}{{ name }}{{ forloop.counter }}{% endfor %}"))
    end)

    it("names fields of loop items as source[].field, through nested loops", function()
      assert.same({ "event.items", "event.items[].lines", "event.items[].lines[].sku", "event.items[].title" },
        variables("{% for item in event.items %}{{ item.title }}{% for line in item.lines %}{{ line.sku }}{% endfor %}"
          .. "{% endfor %}"))
    end)

    it("reads a key given to lookup as part of the path", function()
      assert.same({ "event.Return By", "person.Tier Name" },
        variables("{{ event|lookup:'Return By'|date:'F j' }}{{ person | lookup:'Tier Name' }}"))
    end)
  end)

  describe("compile errors", function()
    it("names an {% if %} never closed, where it was opened and the last line", function()
      local err = compile_error("<p>\n\n\n{% if event.x %}\nyes\n\n\n\n\n\n\n</p>\n")
      assert.equal("return-confirmation/email.html:12: {% if %} opened at line 4 is never closed", err)
    end)

    it("names an {% endfor %} without a {% for %} with its line", function()
      assert.equal("return-confirmation/email.html:2: {% endfor %} without a matching {% for %}",
        compile_error("a\n{% endfor %}"))
    end)

    it("names an unknown tag with its line", function()
      assert.equal("return-confirmation/email.html:3: unknown tag {% include %}",
        compile_error("a\nb\n{% include 'footer.html' %}"))
    end)

    it("names an unknown filter with its line", function()
      assert.equal("return-confirmation/email.html:2: unknown filter 'currency'",
        compile_error("a\n{{ event.total|currency }}"))
    end)

    it("names an unterminated {{ with the line it opens on", function()
      assert.equal("return-confirmation/email.html:2: '{{' is never closed by '}}'",
        compile_error("a\nHi {{ person.first_name \nb"))
    end)

    it("names a {% for %} or {% comment %} never closed", function()
      assert.equal("return-confirmation/email.html:2: {% for %} opened at line 1 is never closed",
        compile_error("{% for x in l %}\n{{ x }}"))
      assert.equal("return-confirmation/email.html:1: {% comment %} opened at line 1 is never closed",
        compile_error("{% comment %}x"))
    end)

    it("names a filter missing its argument and a date format it cannot render", function()
      assert.equal("return-confirmation/email.html:1: filter 'default' needs an argument",
        compile_error("{{ x|default }}"))
      assert.equal("return-confirmation/email.html:2: date format character 'T' is not supported "
        .. "(use Y y m n d j N M F D l H i s A P)", compile_error("\n{{ x|date:'H:i T' }}"))
    end)

    it("names a condition that ends too early", function()
      assert.equal("return-confirmation/email.html:1: expected a value at the end in {% if a and %}",
        compile_error("{% if a and %}x{% endif %}"))
    end)
  end)

  it("renders the same compiled template many times with different contexts", function()
    local tpl = assert(render.compile("{{ n }}{% for x in l %}{{ x }}{% endfor %}"))
    assert.equal("1ab", (tpl:render({ n = 1, l = { "a", "b" } })))
    assert.equal("2", (tpl:render({ n = 2 })))
  end)
end)
