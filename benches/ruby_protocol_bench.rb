# frozen_string_literal: true

# Dispatch through the protocol's wire envelope from Ruby: write, read, query, each
# beside the same operation called on the store directly (same run, same process).
#
#   rake compile
#   ruby -Ilib benches/ruby_protocol_bench.rb [N] [--markdown BENCHMARKS-ruby.md]
#
# N writes over N/10 keys; 5N reads; three query shapes, N/100 of each, over the
# written store: where status (half the keys match) + limit 50; where assignee (a field
# an access_path descriptor names, ~1% of keys match) + limit 50; order priority desc +
# limit 10 over every key.
# Prints a Markdown table; with --markdown FILE it rewrites the block between the
# protocol markers of FILE. The reference's interpreter is not in this repository, so
# there is no side-by-side with it: only our absolute figures.

require "igniter-ledger"
require "json"
require "etc"

n = (ARGV.find { |a| a =~ /\A\d+\z/ } || "20000").to_i
md = ARGV[ARGV.index("--markdown") + 1] if ARGV.include?("--markdown")
keys = n / 10

def measure(count)
  GC.start
  t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  c0 = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
  yield
  wall = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
  cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - c0
  [count / wall, count / cpu]
end

def value(i)
  { title: "Task #{i}", status: i.even? ? :open : :done, priority: i % 5, assignee: "user-#{i % 97}", tags: ["t#{i % 3}"] }
end

def env(op, packet, id)
  { protocol: :igniter_store, schema_version: 1, request_id: id, op: op, packet: packet }
end

rows = []
load_before = File.read("/proc/loadavg").split.first(3).join(" ")

direct = Igniter::Ledger::LedgerStore.new
wired = Igniter::Ledger::LedgerStore.new
wire = wired.protocol.wire
json_store = Igniter::Ledger::LedgerStore.new
json_wire = json_store.protocol.wire

values = Array.new(n) { |i| value(i) }
key_of = Array.new(n) { |i| "k#{i % keys}" }

d = measure(n) { n.times { |i| direct.write(store: :tasks, key: key_of[i], value: values[i]) } }
w = measure(n) { n.times { |i| wire.dispatch(env(:write, { store: :tasks, key: key_of[i], value: values[i] }, "w")) } }
jtexts = Array.new(n) { |i| JSON.generate(env(:write, { store: "tasks", key: key_of[i], value: values[i] }, "w")) }
j = measure(n) { jtexts.each { |t| json_wire.dispatch_json(t) } }
rows << ["write (ops/s)", d, w, j]

reads = n * 5
rkeys = Array.new(reads) { |i| "k#{(i * 7919) % keys}" }
d = measure(reads) { rkeys.each { |k| direct.read(store: :tasks, key: k) } }
w = measure(reads) { rkeys.each { |k| wire.dispatch(env(:read, { store: :tasks, key: k }, "r")) } }
rtexts = rkeys.first(reads).map { |k| JSON.generate(env(:read, { store: "tasks", key: k }, "r")) }
j = measure(reads) { rtexts.each { |t| json_wire.dispatch_json(t) } }
rows << ["read (ops/s)", d, w, j]

queries = [n / 100, 10].max
direct.register_path(Igniter::Ledger.access_path(store: :tasks, scope: :open, filters: { status: :open }))
d = measure(queries) { queries.times { direct.query(store: :tasks, scope: :open).first(50) } }
w = measure(queries) do
  queries.times { wire.dispatch(env(:query, { store: :tasks, where: { status: :open }, limit: 50 }, "q")) }
end
qtext = JSON.generate(env(:query, { store: "tasks", where: { status: "open" }, limit: 50 }, "q"))
j = measure(queries) { queries.times { json_wire.dispatch_json(qtext) } }
rows << ["query, #{keys} keys / #{n} facts, where status (half the keys) + limit 50 (ops/s)", d, w, j]

# A selective field named by an access_path descriptor (about 1 key in 97 matches).
path = { schema_version: 1, kind: :access_path, name: :tasks_by_assignee, store: :tasks, fields: [:assignee] }
wired.protocol.register(path)
json_store.protocol.register(path)
direct.register_path(Igniter::Ledger.access_path(store: :tasks, scope: :user5, filters: { assignee: "user-5" }))
d = measure(queries) { queries.times { direct.query(store: :tasks, scope: :user5).first(50) } }
w = measure(queries) do
  queries.times { wire.dispatch(env(:query, { store: :tasks, where: { assignee: "user-5" }, limit: 50 }, "q")) }
end
qtext = JSON.generate(env(:query, { store: "tasks", where: { assignee: "user-5" }, limit: 50 }, "q"))
j = measure(queries) { queries.times { json_wire.dispatch_json(qtext) } }
rows << ["query, where assignee (access_path descriptor, ~1% of keys) + limit 50 (ops/s)", d, w, j]

# order + limit over every key (no store method does this: direct is n/a).
w = measure(queries) do
  queries.times { wire.dispatch(env(:query, { store: :tasks, order: { priority: :desc }, limit: 10 }, "q")) }
end
qtext = JSON.generate(env(:query, { store: "tasks", order: { priority: "desc" }, limit: 10 }, "q"))
j = measure(queries) { queries.times { json_wire.dispatch_json(qtext) } }
rows << ["query, order priority desc + limit 10 over every key (ops/s)", nil, w, j]
load_after = File.read("/proc/loadavg").split.first(3).join(" ")

fmt = ->(x) { x.round.to_s.reverse.scan(/\d{1,3}/).join(",").reverse }
out = +""
out << "Machine: #{Etc.nprocessors} cores; #{RUBY_DESCRIPTION}. Shared machine: load average before #{load_before}, after #{load_after}.\n"
out << "Size: N = #{n} writes over #{keys} keys, #{reads} reads, #{queries} queries. Command: `ruby -Ilib benches/ruby_protocol_bench.rb #{n} --markdown BENCHMARKS-ruby.md`.\n\n"
out << "| operation | store method | wire.dispatch (Ruby Hash envelope) | dispatch ÷ direct | dispatch_json (JSON text) | CPU-time rates: direct / dispatch / json |\n"
out << "|---|---:|---:|---:|---:|---:|\n"
rows.each do |name, dd, ww, jj|
  if dd
    out << "| #{name} | #{fmt[dd[0]]} | #{fmt[ww[0]]} | #{format("%.2f", ww[0] / dd[0])}× | #{fmt[jj[0]]} | #{fmt[dd[1]]} / #{fmt[ww[1]]} / #{fmt[jj[1]]} |\n"
  else
    out << "| #{name} | n/a | #{fmt[ww[0]]} | n/a | #{fmt[jj[0]]} | n/a / #{fmt[ww[1]]} / #{fmt[jj[1]]} |\n"
  end
end
puts out

if md
  text = File.read(md)
  start = "<!-- protocol figures: generated by benches/ruby_protocol_bench.rb; do not edit by hand -->"
  stop = "<!-- end of protocol figures -->"
  block = "#{start}\n#{out}#{stop}"
  text = text.include?(start) ? text.sub(/#{Regexp.escape(start)}.*?#{Regexp.escape(stop)}/m) { block } : "#{text.rstrip}\n\n#{block}\n"
  File.write(md, text)
end
