#define BOOST_TEST_MODULE context_window
#include <boost/test/unit_test.hpp>

#include "actors/context_window.hpp"
#include "providers/token_estimator.hpp"

#include <random>

using namespace parley;

namespace {

message_record msg(std::int64_t seq, std::string content, std::string role = "user") {
  message_record m;
  m.id = "m" + std::to_string(seq);
  m.seq = seq;
  m.role = std::move(role);
  m.content = std::move(content);
  return m;
}

// 12 characters: 3 tokens of text + 4 of framing = 7 tokens each.
const std::string twelve = "abcdefghijkl";

}  // namespace

BOOST_AUTO_TEST_CASE(estimates) {
  BOOST_TEST(estimate_tokens("") == 0);
  BOOST_TEST(estimate_tokens("abcd") == 1);
  BOOST_TEST(estimate_tokens("abcde") == 2);
  BOOST_TEST(count_code_points("héllo") == 5u);
  BOOST_TEST(estimate_message_tokens(twelve) == 7);
}

BOOST_AUTO_TEST_CASE(keeps_the_newest_that_fit_oldest_first) {
  context_window w;
  w.reset({msg(1, twelve), msg(2, twelve), msg(3, twelve)}, 14, false);
  BOOST_REQUIRE(w.size() == 2u);
  BOOST_TEST(w.front().seq == 2);
  BOOST_TEST(w.back().seq == 3);
  BOOST_TEST(w.tokens() == 14);
  w.append(msg(4, twelve));
  BOOST_TEST(w.front().seq == 3);
  BOOST_TEST(w.back().seq == 4);
}

BOOST_AUTO_TEST_CASE(budget_edge_exactly_full_and_one_over) {
  context_window w;
  w.reset({msg(1, twelve), msg(2, twelve)}, 14, false);
  BOOST_TEST(w.size() == 2u);  // exactly at budget: kept
  w.reset({msg(1, twelve), msg(2, twelve)}, 13, false);
  BOOST_TEST(w.size() == 1u);  // one token short: oldest left out whole
}

BOOST_AUTO_TEST_CASE(newest_is_kept_even_when_it_alone_is_over_budget) {
  context_window w;
  w.reset({msg(1, twelve), msg(2, std::string(400, 'x'))}, 10, false);
  BOOST_REQUIRE(w.size() == 1u);
  BOOST_TEST(w.back().seq == 2);
}

BOOST_AUTO_TEST_CASE(system_prompt_is_first_and_never_dropped) {
  auto budget = message_budget(30, std::string(40, 's'));  // 10 + 4 tokens of prompt
  BOOST_TEST(budget == 16);
  BOOST_TEST(message_budget(5, std::string(400, 's')) == 0);
  context_window w;
  w.reset({msg(1, twelve), msg(2, twelve, "assistant"), msg(3, twelve)}, budget, false);
  auto prompt = w.assemble(std::string("be terse"));
  BOOST_REQUIRE(prompt.size() == 3u);
  BOOST_TEST(prompt[0].role == "system");
  BOOST_TEST(prompt[0].content == "be terse");
  BOOST_TEST(prompt[1].role == "assistant");
  BOOST_TEST(prompt[2].content == twelve);
  BOOST_TEST(w.assemble(std::nullopt).size() == 2u);
}

BOOST_AUTO_TEST_CASE(edits_change_content_and_may_call_for_a_refill) {
  context_window w;
  w.reset({msg(1, twelve), msg(2, twelve), msg(3, twelve)}, 14, false);
  BOOST_TEST(!w.needs_refill());
  BOOST_TEST(!w.edit("m1", "gone already"));  // outside the window
  BOOST_TEST(w.edit("m3", "hi"));             // shrinks: m1 might fit again
  BOOST_TEST(w.back().message.content == "hi");
  BOOST_TEST(w.needs_refill());
  w.reset({msg(1, twelve), msg(2, twelve), msg(3, "hi")}, 14, false);
  BOOST_TEST(!w.needs_refill());
  BOOST_TEST(w.size() == 2u);  // 7 + 5 = 12; m1 would make 19
}

BOOST_AUTO_TEST_CASE(growing_an_edit_drops_the_oldest) {
  context_window w;
  w.reset({msg(1, twelve), msg(2, twelve)}, 14, false);
  BOOST_TEST(w.edit("m2", std::string(20, 'y')));
  BOOST_REQUIRE(w.size() == 1u);
  BOOST_TEST(w.front().seq == 2);
}

BOOST_AUTO_TEST_CASE(deletes_and_budget_changes) {
  context_window w;
  w.reset({msg(2, twelve), msg(3, twelve)}, 14, true);
  BOOST_TEST(w.remove("m3"));
  BOOST_TEST(!w.remove("m3"));
  BOOST_TEST(w.needs_refill());  // older messages exist and there is room

  context_window small;
  small.reset({msg(1, twelve), msg(2, twelve)}, 14, false);
  small.set_budget(7);
  BOOST_TEST(small.size() == 1u);
  small.set_budget(100);
  BOOST_TEST(small.needs_refill());  // m1 was dropped and fits again

  context_window complete;
  complete.reset({msg(1, twelve)}, 14, false);
  complete.set_budget(100);
  BOOST_TEST(!complete.needs_refill());  // nothing older exists
}

BOOST_AUTO_TEST_CASE(assemble_with_equals_append_then_assemble) {
  context_window w;
  w.reset({msg(1, twelve), msg(2, twelve, "assistant"), msg(3, twelve)}, 21, false);
  auto pending = msg(4, "abcd");  // 1 + 4 = 5 tokens
  auto copy = w;
  copy.append(pending);
  auto expected = copy.assemble(std::string("sys"));
  auto got = w.assemble_with(std::string("sys"), &pending, nullptr, w.budget());
  BOOST_REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) BOOST_TEST(got[i].content == expected[i].content);
  BOOST_TEST(w.size() == 3u);  // unchanged

  // Skipping the last assistant message, as regenerate does.
  std::string skip = "m3";
  auto regen = w.assemble_with(std::nullopt, nullptr, &skip, w.budget());
  BOOST_REQUIRE(regen.size() == 2u);
  BOOST_TEST(regen.back().role == "assistant");

  // A pending message larger than the budget is still sent alone.
  auto huge = msg(5, std::string(400, 'x'));
  auto alone = w.assemble_with(std::nullopt, &huge, nullptr, w.budget());
  BOOST_REQUIRE(alone.size() == 1u);
  BOOST_TEST(alone[0].content.size() == 400u);
}

BOOST_AUTO_TEST_CASE(assemble_with_a_smaller_budget_leaves_out_older_messages) {
  context_window w;
  w.reset({msg(1, twelve), msg(2, twelve, "assistant"), msg(3, twelve)}, 21, false);
  auto pending = msg(4, "abcd");  // 5 tokens; each twelve-character message is 7
  auto smaller = w.assemble_with(std::string("sys"), &pending, nullptr, 12);
  BOOST_REQUIRE(smaller.size() == 3u);  // system prompt, m3, pending
  BOOST_TEST(smaller[0].role == "system");
  BOOST_TEST(smaller[2].content == "abcd");
  // A budget above the window's own changes nothing: older messages are not in memory.
  auto larger = w.assemble_with(std::nullopt, &pending, nullptr, 1000);
  BOOST_TEST(larger.size() == w.assemble_with(std::nullopt, &pending, nullptr, 21).size());
}

BOOST_AUTO_TEST_CASE(a_prompt_shares_the_windows_text_and_estimates) {
  context_window w;
  auto first = msg(1, std::string(100, 'a'));
  w.reset({first, msg(2, twelve, "assistant")}, 1000, false);
  // The record, the window and every prompt hold one copy of the text.
  BOOST_TEST((w.front().message.content.data() ==
              first.content.data()));  // the same characters, not a copy
  auto pending = msg(3, std::string(80, 'p'));
  auto prompt = w.assemble_with(std::string("sys"), &pending, nullptr, w.budget());
  BOOST_REQUIRE(prompt.size() == 4u);
  BOOST_TEST(
      (prompt[1].content.data() == first.content.data()));  // the same characters, not a copy
  BOOST_TEST(
      (prompt[3].content.data() == pending.content.data()));  // the same characters, not a copy
  // Each message carries the estimate made when it entered the window.
  BOOST_TEST(prompt[1].tokens == estimate_message_tokens(std::string(100, 'a')));
  BOOST_TEST(prompt[2].tokens == 7);
  BOOST_TEST(prompt[3].tokens == estimate_message_tokens(std::string(80, 'p')));
  BOOST_TEST(prompt.estimated_tokens() ==
             estimate_message_tokens("sys") + w.tokens() + prompt[3].tokens);
}

BOOST_AUTO_TEST_CASE(the_system_prompt_is_kept_while_it_stays_the_same) {
  context_window w;
  w.reset({msg(1, twelve)}, 100, false);
  auto one = w.assemble(std::string("be terse"));
  auto two = w.assemble(std::string("be terse"));
  BOOST_TEST((one[0].content.data() == two[0].content.data()));  // the same characters, not a copy
  auto changed = w.assemble(std::string("be verbose"));
  BOOST_TEST(changed[0].content == "be verbose");
  BOOST_TEST(changed[0].tokens == estimate_message_tokens("be verbose"));
  BOOST_TEST(one[0].content == "be terse");  // an earlier prompt keeps its own text
}

BOOST_AUTO_TEST_CASE(an_edit_is_estimated_once_and_the_total_follows) {
  context_window w;
  w.reset({msg(1, twelve), msg(2, twelve)}, 100, false);
  BOOST_TEST(w.tokens() == 14);
  shared_text longer(std::string(40, 'e'));  // 10 + 4 tokens
  BOOST_TEST(w.edit("m1", longer));
  BOOST_TEST(
      (w.front().message.content.data() == longer.data()));  // the same characters, not a copy
  BOOST_TEST(w.front().message.tokens == 14);
  BOOST_TEST(w.tokens() == 21);
  BOOST_TEST(w.remove("m2"));
  BOOST_TEST(w.tokens() == 14);
}

BOOST_AUTO_TEST_CASE(a_prompt_in_flight_keeps_what_it_was_given) {
  context_window w;
  w.reset({msg(1, twelve), msg(2, twelve, "assistant")}, 21, false);
  auto pending = msg(3, "abcd");
  auto held = w.assemble_with(std::nullopt, &pending, nullptr, w.budget());
  BOOST_REQUIRE(held.size() == 3u);
  // The window changes while a provider still reads the prompt.
  w.append(pending);
  w.append(msg(4, "a reply!", "assistant"));
  BOOST_TEST(w.edit("m2", "rewritten"));
  BOOST_TEST(w.remove("m3"));
  BOOST_TEST(held[0].content == twelve);
  BOOST_TEST(held[1].content == twelve);
  BOOST_TEST(held[1].role == "assistant");
  BOOST_TEST(held[2].content == "abcd");
  BOOST_TEST(held.estimated_tokens() == 19);
  BOOST_TEST(w.at(w.size() - 2).message.content == "rewritten");
  BOOST_TEST(w.back().seq == 4);
}

BOOST_AUTO_TEST_CASE(skipping_a_message_before_the_newest) {
  context_window w;
  w.reset({msg(1, twelve), msg(2, "abcd", "assistant"), msg(3, twelve)}, 100, false);
  std::string skip = "m2";
  auto p = w.assemble_with(std::nullopt, nullptr, &skip, w.budget());
  BOOST_REQUIRE(p.size() == 2u);
  BOOST_TEST(p[0].content == twelve);
  BOOST_TEST(p[1].content == twelve);
  BOOST_TEST(p.estimated_tokens() == 14);
  BOOST_TEST(w.size() == 3u);  // unchanged
}

BOOST_AUTO_TEST_CASE(a_long_run_of_trims_keeps_the_newest_in_order) {
  context_window w;
  w.reset({}, 70, false);  // ten twelve-character messages
  for (std::int64_t seq = 1; seq <= 1000; ++seq) {
    w.append(msg(seq, twelve, seq % 2 ? "user" : "assistant"));
    if (seq % 97 == 0) auto held = w.assemble(std::nullopt);  // sometimes shared
  }
  BOOST_REQUIRE(w.size() == 10u);
  for (std::size_t i = 0; i < w.size(); ++i) BOOST_TEST(w.at(i).seq == 991 + std::int64_t(i));
  BOOST_TEST(w.tokens() == 70);
  BOOST_TEST(w.front().id == "m991");
  auto p = w.assemble(std::string("sys"));
  BOOST_TEST(p.size() == 11u);
  BOOST_TEST(p.back().role == "assistant");
}

namespace {

/// The window's rule written the plain way, to hold the real one against.
struct reference_window {
  std::vector<message_record> kept;  // oldest first
  std::int64_t budget = 0;

  static std::int64_t cost(const message_record& m) { return estimate_message_tokens(m.content); }

  std::int64_t total() const {
    std::int64_t t = 0;
    for (auto& m : kept) t += cost(m);
    return t;
  }
  void trim() {
    while (kept.size() > 1 && total() > budget) kept.erase(kept.begin());
  }
  /// Contents of the prompt: the newest that fit, walking back from the newest.
  std::vector<std::string> prompt(const message_record* pending, const std::string* skip,
                                  std::int64_t limit) const {
    limit = std::min(limit, budget);
    std::int64_t used = pending ? cost(*pending) : 0;
    bool any = pending != nullptr;
    std::vector<std::string> newest_first;
    for (auto i = kept.rbegin(); i != kept.rend(); ++i) {
      if (skip && i->id == *skip) continue;
      if (any && used + cost(*i) > limit) break;
      used += cost(*i);
      any = true;
      newest_first.push_back(i->content.str());
    }
    std::vector<std::string> out(newest_first.rbegin(), newest_first.rend());
    if (pending) out.push_back(pending->content.str());
    return out;
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(random_changes_give_the_prompts_the_plain_rule_gives) {
  std::mt19937 rng(20261206);
  auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  auto text = [&] { return std::string(static_cast<std::size_t>(pick(60)), 'a' + char(pick(26))); };
  for (int round = 0; round < 50; ++round) {
    context_window w;
    reference_window ref;
    ref.budget = 20 + pick(200);
    w.reset({}, ref.budget, false);
    std::int64_t seq = 0;
    // Prompts still "in flight", which share the window's messages, and their contents.
    std::vector<std::pair<prompt, std::vector<std::string>>> held;
    for (int step = 0; step < 300; ++step) {
      switch (pick(6)) {
        case 0:
        case 1: {
          auto m = msg(++seq, text(), pick(2) ? "user" : "assistant");
          w.append(m);
          ref.kept.push_back(m);
          ref.trim();
          break;
        }
        case 2:
          if (!ref.kept.empty()) {
            auto& m = ref.kept[static_cast<std::size_t>(pick(int(ref.kept.size())))];
            m.content = text();
            BOOST_TEST(w.edit(m.id, m.content));
            ref.trim();
          }
          break;
        case 3:
          if (!ref.kept.empty()) {
            auto at = ref.kept.begin() + pick(int(ref.kept.size()));
            BOOST_TEST(w.remove(at->id));
            ref.kept.erase(at);
          }
          break;
        case 4:
          ref.budget = 20 + pick(200);
          w.set_budget(ref.budget);
          ref.trim();
          break;
        default:
          break;
      }
      BOOST_REQUIRE(w.size() == ref.kept.size());
      BOOST_REQUIRE(w.tokens() == ref.total());
      auto pending = msg(seq + 1, text());
      bool with_pending = pick(2);
      std::optional<std::string> skip;
      if (!ref.kept.empty() && pick(3) == 0)
        skip = ref.kept[static_cast<std::size_t>(pick(int(ref.kept.size())))].id;
      auto limit = 10 + pick(250);
      auto got = w.assemble_with(std::string("sys"), with_pending ? &pending : nullptr,
                                 skip ? &*skip : nullptr, limit);
      auto want = ref.prompt(with_pending ? &pending : nullptr, skip ? &*skip : nullptr, limit);
      BOOST_REQUIRE(got.size() == want.size() + 1);
      std::int64_t tokens = got[0].tokens;
      for (std::size_t i = 0; i < want.size(); ++i) {
        BOOST_REQUIRE(got[i + 1].content == want[i]);
        BOOST_REQUIRE(got[i + 1].tokens == estimate_message_tokens(want[i]));
        tokens += got[i + 1].tokens;
      }
      BOOST_REQUIRE(got.estimated_tokens() == tokens);
      // A prompt held across later changes still reads what it was given.
      for (auto& [p, contents] : held) {
        BOOST_REQUIRE(p.size() == contents.size());
        for (std::size_t i = 0; i < contents.size(); ++i)
          BOOST_REQUIRE(p[i].content == contents[i]);
      }
      if (pick(4) == 0) {
        std::vector<std::string> contents;
        for (auto& m : got) contents.push_back(m.content.str());
        held.emplace_back(std::move(got), std::move(contents));
      }
      if (held.size() > 3) held.erase(held.begin());
    }
  }
}

BOOST_AUTO_TEST_CASE(a_summary_stands_in_for_what_it_covers) {
  context_window w;
  w.reset({msg(1, twelve), msg(2, twelve), msg(3, twelve), msg(4, twelve)}, 100, false);
  summary_cover cover{chat_message("system", "Summary: one and two"), 2};
  auto p = w.assemble_with(std::string("sys"), nullptr, nullptr, 100, &cover);
  BOOST_REQUIRE(p.size() == 4u);  // system, summary, m3, m4
  BOOST_TEST(p[0].content.str() == "sys");
  BOOST_TEST(p[1].content.str() == "Summary: one and two");
  BOOST_TEST(p[1].role == "system");
  BOOST_TEST(p[2].tokens == 7);
  BOOST_TEST(p.estimated_tokens() == estimate_message_tokens("sys") + cover.message.tokens + 2 * 7);
  // Its tokens come out of the budget: with room for it and one message, the older goes.
  auto tight = w.assemble_with(std::nullopt, nullptr, nullptr, cover.message.tokens + 7, &cover);
  BOOST_REQUIRE(tight.size() == 2u);
  BOOST_TEST(tight[0].content.str() == "Summary: one and two");
  // Skipping a message it covers changes nothing; skipping a newer one drops it.
  std::string covered = "m1", newer = "m3";
  BOOST_TEST(w.assemble_with(std::nullopt, nullptr, &covered, 100, &cover).size() == 3u);
  BOOST_TEST(w.assemble_with(std::nullopt, nullptr, &newer, 100, &cover).size() == 2u);
  // A pending message comes last, after the uncovered ones.
  auto pending = msg(5, twelve);
  auto with_pending = w.assemble_with(std::nullopt, &pending, nullptr, 100, &cover);
  BOOST_TEST(with_pending.size() == 4u);
  BOOST_TEST(with_pending.back().tokens == 7);
}
