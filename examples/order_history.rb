# frozen_string_literal: true

# A small shop on igniter-ledger: orders, stock availability and prices, with
#   - current state (stores :orders, :stock) next to append-only histories
#     (:order_events partitioned by order, :stock_moves partitioned by SKU),
#   - causation: every stock move points at the order event that caused it,
#   - atomic transactions with optimistic concurrency (two clerks race for the last unit),
#   - a scope ("low stock") whose consumer raises an alert when a SKU enters it,
#   - bitemporal prices (effective dates, a late correction),
#   - reopen from disk.
#
#   rake compile && ruby -Ilib examples/order_history.rb

require "igniter-ledger"
require "tmpdir"

L = Igniter::Ledger

class Shop
  attr_reader :ledger

  def initialize(ledger)
    @ledger = ledger
    @alerts = []
    ledger.register_path(L.access_path(store: :stock, scope: :low, filters: { low: true },
                                       consumers: [->(_store, _scope) { @alerts << low_stock_skus }]))
  end

  attr_reader :alerts

  def low_stock_skus
    ledger.query(store: :stock, scope: :low).map(&:key)
  end

  def restock(sku, units)
    current = ledger.read_fact(store: :stock, key: sku)
    on_hand = (current&.value || {}).fetch(:on_hand, 0) + units
    ledger.transaction do |tx|
      tx.write(store: :stock, key: sku, value: stock_value(on_hand), expected: current&.id)
      tx.append(history: :stock_moves, event: { sku: sku, delta: units, reason: :restock }, partition_key: :sku)
    end
  end

  # Places an order for `lines` ({sku => units}); reserves stock atomically. Retries when
  # another clerk changed the stock in between (ConflictError), refuses when short.
  def place(order_id, lines, clerk:)
    attempts = 0
    begin
      attempts += 1
      stock = lines.keys.to_h { |sku| [sku, ledger.read_fact(store: :stock, key: sku)] }
      short = lines.select { |sku, n| stock[sku].nil? || stock[sku].value[:on_hand] < n }
      return [:refused, short.keys] unless short.empty?

      facts = ledger.transaction do |tx|
        tx.write(store: :orders, key: order_id, value: { status: :placed, lines: lines, clerk: clerk }, expected: nil)
        tx.append(history: :order_events, event: { order_id: order_id, type: :placed, lines: lines },
                  partition_key: :order_id, producer: { clerk: clerk })
        lines.each do |sku, n|
          tx.write(store: :stock, key: sku, value: stock_value(stock[sku].value[:on_hand] - n), expected: stock[sku].id)
        end
      end
      event = facts[1]
      # Stock moves name the order event that caused them.
      lines.each do |sku, n|
        ledger.append(history: :stock_moves, event: { sku: sku, delta: -n, reason: :order, order_id: order_id },
                      partition_key: :sku, causation: event.id)
      end
      [:placed, attempts]
    rescue L::ConflictError
      retry if attempts < 5
      raise
    end
  end

  def advance(order_id, status)
    order = ledger.read_fact(store: :orders, key: order_id)
    ledger.transaction do |tx|
      tx.write(store: :orders, key: order_id, value: order.value.merge(status: status), expected: order.id)
      tx.append(history: :order_events, event: { order_id: order_id, type: status }, partition_key: :order_id)
    end
  end

  def cancel(order_id)
    order = ledger.read_fact(store: :orders, key: order_id)
    facts = advance(order_id, :cancelled)
    order.value[:lines].each do |sku, n|
      current = ledger.read_fact(store: :stock, key: sku)
      ledger.transaction do |tx|
        tx.write(store: :stock, key: sku, value: stock_value(current.value[:on_hand] + n), expected: current.id)
        tx.append(history: :stock_moves, event: { sku: sku, delta: n, reason: :cancel, order_id: order_id },
                  partition_key: :sku, causation: facts[1].id)
      end
    end
  end

  private

  def stock_value(on_hand)
    { on_hand: on_hand, low: on_hand < 3 }
  end
end

def say(text)
  puts "  #{text}"
end

Dir.mktmpdir("igniter-ledger-shop") do |dir|
  path = File.join(dir, "shop.wal")
  ledger = L.open(path, durability: :flush)
  shop = Shop.new(ledger)

  puts "== restock"
  shop.restock("kettle", 5)
  shop.restock("mug", 12)
  say "stock: kettle=#{ledger.read(store: :stock, key: "kettle")}, mug=#{ledger.read(store: :stock, key: "mug")}"
  before_orders = ledger.fact_log_all.last.transaction_time

  puts "== orders"
  say "o-1001 #{shop.place("o-1001", { "kettle" => 2, "mug" => 4 }, clerk: "ana").inspect}"
  say "o-1002 #{shop.place("o-1002", { "kettle" => 1 }, clerk: "ben").inspect}"
  shop.advance("o-1001", :paid)
  shop.advance("o-1001", :shipped)
  say "o-1003 #{shop.place("o-1003", { "kettle" => 9 }, clerk: "ana").inspect} (only #{ledger.read(store: :stock, key: "kettle")[:on_hand]} kettles)"

  puts "== two clerks race for the last kettles (threads, optimistic concurrency)"
  results = %w[cat dan].map.with_index do |clerk, i|
    Thread.new { [clerk, shop.place("o-20#{i}", { "kettle" => 2 }, clerk: clerk)] }
  end.map(&:value)
  results.each { |clerk, r| say "#{clerk}: #{r.inspect}" }
  say "kettles left: #{ledger.read(store: :stock, key: "kettle")[:on_hand]}"
  stale = ledger.read_fact(store: :stock, key: "mug")
  ledger.write(store: :stock, key: "mug", value: { on_hand: 7, low: false }, expected: stale.id) # clerk A
  begin
    ledger.write(store: :stock, key: "mug", value: { on_hand: 6, low: false }, expected: stale.id) # clerk B, stale
  rescue L::ConflictError => e
    say "a write based on a stale read is refused: #{e.class.name.split("::").last} " \
        "(expected ...#{e.expected[-8..]}, found ...#{e.actual[-8..]})"
  end

  puts "== cancel o-1002: stock comes back, caused by the cancel event"
  shop.cancel("o-1002")
  say "kettles left: #{ledger.read(store: :stock, key: "kettle")[:on_hand]}"
  say "low-stock alerts (scope consumer): #{shop.alerts.inspect}"

  puts "== order o-1001, from its partition of :order_events"
  ledger.history_partition(store: :order_events, partition_key: :order_id, partition_value: "o-1001").each do |f|
    say format("%-8s producer=%-16s %s", f.value[:type], f.producer.inspect, f.id)
  end
  say "order record history: #{ledger.history(store: :orders, key: "o-1001").map { |f| f.value[:status] }.inspect}"

  puts "== kettle moves (partition of :stock_moves) and what caused them"
  ledger.history_partition(store: :stock_moves, partition_key: :sku, partition_value: "kettle").each do |m|
    cause = m.causation && ledger.fact_by_id(m.causation)
    because = cause ? "<- #{cause.value[:type]} of #{cause.value[:order_id]}" : ""
    say format("%+3d %-8s %s", m.value[:delta], m.value[:reason], because)
  end

  puts "== time travel"
  say "kettle stock before any order: #{ledger.read(store: :stock, key: "kettle", as_of: before_orders).inspect}"
  say "stock chain of kettle: #{ledger.causation_chain(store: :stock, key: "kettle").size} facts, " \
      "proof #{ledger.lineage(store: :stock, key: "kettle")[:proof_hash][0, 16]}..."

  puts "== bitemporal prices: effective dates, then a late correction"
  jan1 = Time.utc(2025, 1, 1).to_f
  feb1 = Time.utc(2025, 2, 1).to_f
  mar1 = Time.utc(2025, 3, 1).to_f
  ledger.write(store: :prices, key: "kettle", value: { cents: 2_999 }, valid_time: jan1)
  before_fix = ledger.write(store: :prices, key: "kettle", value: { cents: 3_499 }, valid_time: mar1)
  ledger.write(store: :prices, key: "kettle", value: { cents: 3_199 }, valid_time: feb1, producer: :correction)
  mid_feb = Time.utc(2025, 2, 15)
  say "price on 15 Feb, as known now:          #{ledger.read(store: :prices, key: "kettle", valid_at: mid_feb)[:cents]}"
  say "price on 15 Feb, as known before fix:   " \
      "#{ledger.read(store: :prices, key: "kettle", valid_at: mid_feb, as_of: before_fix.transaction_time)[:cents]}"
  say "price on 10 Mar:                        #{ledger.read(store: :prices, key: "kettle", valid_at: Time.utc(2025, 3, 10))[:cents]}"

  puts "== reopen"
  count = ledger.fact_count
  ledger.close
  L.open(path) do |again|
    say "facts: #{count} written, #{again.fact_count} after reopen (#{again.open_report[:frames_replayed]} WAL frames)"
    say "kettle stock: #{again.read(store: :stock, key: "kettle")}"
    say "o-1001 status: #{again.read(store: :orders, key: "o-1001")[:status]}"
  end
end
puts "ok"
