# frozen_string_literal: true

# Retention by whole segments: a segmented ledger drops sealed segments that fall out of
# each store's retention window, writes a receipt for every one, and never drops a fact
# that is still the latest of its key (it is carried forward first).
#
#   ruby -Ilib examples/segment_purge.rb
require "igniter-ledger"
require "json"
require "tmpdir"

def show(label, receipts)
  puts "#{label}: #{receipts.size} segment(s) purged"
  receipts.each do |r|
    puts "  #{r["segment_id"]}: #{r["fact_count"]} facts, #{r["byte_size"]} bytes, " \
         "strategy #{r["purge_strategy"]}, carried forward #{r["carried_forward"] || 0}"
    puts "    reason: #{r["reason"]}"
  end
end

Dir.mktmpdir do |dir|
  root = File.join(dir, "ledger")
  retention = {
    readings: { strategy: :rolling_window, duration: 1 }, # keep one second of readings
    sessions: { strategy: :ephemeral },                   # keep only the newest sealed segment
    invoices: { strategy: :permanent }                    # never purged
  }
  store = Igniter::Ledger.segmented(root, retention: retention, durability: :flush)

  # Three generations of data, each sealed into its own segments (seal_segments! is the
  # segmented store's checkpoint; size and time-bucket rotation seal segments too).
  3.times do |gen|
    5.times { |i| store.write(store: :readings, key: "sensor-#{i}", value: { celsius: 20 + gen, at: gen }) }
    store.write(store: :readings, key: "sensor-old-#{gen}", value: { celsius: 0 }) # never rewritten
    store.write(store: :sessions, key: "s#{gen}", value: { user: "u#{gen}" })
    store.write(store: :invoices, key: "inv-#{gen}", value: { total: 100 * (gen + 1) })
    store.seal_segments!
  end
  store.write(store: :readings, key: "sensor-0", value: { celsius: 30, at: 3 }) # live segment

  before = store.storage_stats
  puts "before: " + before["stores"].map { |s, st| "#{s} #{st["sealed_count"]} sealed/#{st["fact_count"]} facts" }.join(", ")

  show("sessions (ephemeral)", store.purge_segments!(store: :sessions))
  sleep 1.2 # the readings' sealed segments are now older than their one-second window
  show("readings (rolling_window 1s)", store.purge_segments!(store: :readings))
  show("invoices (permanent)", store.purge_segments!(store: :invoices))

  puts "compaction_activity (segment purges):"
  store.compaction_activity.select { |e| e[:kind] == :segment_purge }.each do |e|
    puts "  #{e[:store]} #{e[:receipt_id]} #{e[:fact_count]} facts at #{Time.at(e[:occurred_at]).utc}"
  end
  store.close

  # Reopened: the purged segments are gone, their receipts stay on disk beside where
  # they were, and every key still reads its latest value.
  Igniter::Ledger.segmented(root, retention: retention, durability: :flush) do |s|
    after = s.storage_stats
    puts "after reopen: " + after["stores"].map { |n, st| "#{n} #{st["sealed_count"]} sealed/#{st["fact_count"]} facts, #{st["purge_receipt_count"]} receipts" }.join(", ")
    puts "readings sensor-0 = #{s.read(store: :readings, key: "sensor-0").inspect}"
    puts "readings sensor-old-0 (latest of its key, carried forward) = #{s.read(store: :readings, key: "sensor-old-0").inspect}"
    puts "sessions s0 = #{s.read(store: :sessions, key: "s0").inspect}"
    receipts = Dir[File.join(root, "wal", "**", "*.purged.json")].map { |p| File.basename(p) }
    puts "receipt files: #{receipts.sort.join(", ")}"
  end
end
