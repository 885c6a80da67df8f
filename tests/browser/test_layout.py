"""Every page fits the screen it is on and is readable in light and dark: badges, the board at
1280 px, a task's page and the navigation on a phone, pages that open at their top, paths that say
where in the project (never the server's folders), and the admin."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_chat import log_in, open_new_chat
from tests.browser.test_tasks import RUN_TIMEOUT, accept_confirmations, open_board, start_task

pytestmark = [pytest.mark.browser, pytest.mark.real_cli]

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}


# The contrast ratio (WCAG 2) of each visible element's text against what is behind it: its own
# background, else the nearest ancestor's, blended where they are translucent.
CONTRASTS = """
(elements) => {
  const parse = (s) => { const m = s.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const luminance = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  return elements.filter((el) => el.getClientRects().length).map((el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const colour = parse(getComputedStyle(node).backgroundColor);
      if (colour[3] > 0) { layers.push(colour); if (colour[3] === 1) break; }
    }
    let behind = layers.length && layers[layers.length - 1][3] === 1 ? layers.pop() : [255, 255, 255, 1];
    while (layers.length) behind = over(layers.pop(), behind);
    const text = over(parse(getComputedStyle(el).color), behind);
    const [a, b] = [luminance(text), luminance(behind)];
    return {text: el.textContent.trim(), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)};
  });
}
"""


def unreadable(page: Page, selector: str) -> list[dict]:
    found = page.eval_on_selector_all(selector, CONTRASTS)
    assert found, f"no {selector} on {page.url}"
    return [f for f in found if f["ratio"] < 4.5]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_status_badges_are_readable_in_light_and_dark(live_app, page, scheme):
    page.emulate_media(color_scheme=scheme)
    name = f"bea{scheme}"
    open_board(live_app, page, name)
    task_id = start_task(page, title="Hello", prompt="write hello.txt: hello")
    expect(page.locator("#task-status")).to_have_text("Completed", timeout=RUN_TIMEOUT)
    expect(page.locator(".task-diff .badge")).to_have_text("added")
    assert unreadable(page, ".badge") == []
    page.goto(live_app.base_url + "/tasks/")
    expect(page.get_by_role("region", name="Completed: review and merge").locator(".badge").first).to_have_text(
        "Completed"
    )
    assert unreadable(page, ".badge") == []

    page.goto(f"{live_app.base_url}/tasks/{task_id}/")
    accept_confirmations(page)
    page.get_by_role("button", name="Merge").click()
    expect(page.locator("#task-status")).to_have_text("Merged", timeout=RUN_TIMEOUT)
    assert unreadable(page, ".badge") == []
    page.goto(live_app.base_url + "/tasks/")
    expect(page.get_by_role("region", name="Merged / cancelled").locator(".badge").first).to_have_text("Merged")
    assert unreadable(page, ".badge") == []

    open_new_chat(page, "echo: hi")
    expect(page.locator("#session-state .badge")).to_have_text("Idle")
    assert unreadable(page, ".badge") == []
    page.goto(live_app.base_url + "/")
    expect(page.locator("#chat-list .badge").first).to_have_text("Idle")
    assert unreadable(page, ".badge") == []
    assert unreadable(page, "a, h1, .hint, .preview, button, .badge") == []


def background_is_dark(page: Page) -> bool:
    colour = page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(v) for v in re.findall(r"\d+", colour)[:3])
    return red + green + blue < 3 * 100


def test_the_theme_is_picked_per_browser_and_served_with_the_page(live_app, page):
    live_app.create_user(username="theo", password="pw-theo-123")
    page.emulate_media(color_scheme="light")
    log_in(page, live_app.base_url, "theo", "pw-theo-123")
    assert not background_is_dark(page)
    theme = page.get_by_label("Theme")
    expect(theme).to_have_value("system")

    with page.expect_response("**/theme/") as kept:
        theme.select_option("dark")
    assert kept.value.status == 204
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert background_is_dark(page)
    # The page comes with the theme already set (no light flash before a script runs), in every
    # tab of this browser.
    other = page.context.new_page()
    other.emulate_media(color_scheme="light")
    answer = other.goto(live_app.base_url + "/tasks/")
    assert re.search(r'<html [^>]*data-theme="dark"', answer.text())
    assert background_is_dark(other)
    expect(other.get_by_label("Theme")).to_have_value("dark")

    with page.expect_response("**/theme/"):
        theme.select_option("light")
    page.emulate_media(color_scheme="dark")
    page.reload()
    assert not background_is_dark(page)
    with page.expect_response("**/theme/"):
        page.get_by_label("Theme").select_option("system")
    expect(page.locator("html")).to_have_attribute("data-theme", "system")
    assert background_is_dark(page)  # as the system is set now
    # Another browser has its own choice.
    fresh = page.context.browser.new_context(color_scheme="light").new_page()
    fresh.goto(live_app.base_url + "/accounts/login/")
    assert not background_is_dark(fresh)
    fresh.context.close()


# The elements of a page that reach past the right edge of the screen.
PAST_THE_EDGE = """(width) => Array.from(document.querySelectorAll("body *"))
  .filter((el) => el.getBoundingClientRect().right > width + 1 || el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX === "visible")
  .map((el) => `${el.tagName.toLowerCase()}.${el.className} ${Math.round(el.getBoundingClientRect().right)} px`)"""


def fits(page: Page, width: int) -> bool:
    """Whether the page fits ``width`` with no sideways scroll (what does not is in the message)."""
    wide = page.evaluate("document.documentElement.scrollWidth")
    assert wide <= width, f"{page.url} is {wide} px wide: {page.evaluate(PAST_THE_EDGE, width)[:10]}"
    return True


def test_the_tasks_board_fits_a_1280px_screen(live_app, page):
    page.set_viewport_size(DESKTOP)
    open_board(live_app, page, "bo")
    closed = page.get_by_role("region", name="Merged / cancelled")
    expect(closed).to_be_visible()
    # Measured in one step in the page: the board's columns are re-rendered as it refreshes, and
    # a box asked for after the look can belong to a column already swapped out (None).
    right = closed.evaluate("el => el.getBoundingClientRect().right")
    assert right <= DESKTOP["width"], right
    assert fits(page, DESKTOP["width"])


def test_a_tasks_page_and_the_board_fit_a_phone(live_app, page):
    open_board(live_app, page, "phil")
    page.set_viewport_size(PHONE)
    # Words with no place to break them: a file's name, a title.
    name = "notes/" + "averylongname" * 5 + ".txt"
    start_task(page, title="Rename " + "Unbreakable" * 5, prompt=f"write {name}: hi")
    expect(page.locator("#task-status")).to_have_text("Completed", timeout=RUN_TIMEOUT)
    expect(page.locator(".task-diff")).to_contain_text(name)
    expect(page.locator(".task-facts")).to_contain_text(name)
    assert fits(page, PHONE["width"])
    page.goto(live_app.base_url + "/tasks/")
    assert fits(page, PHONE["width"])


def test_on_a_phone_the_banner_and_navigation_fold_away(demo_app, page):
    demo_app.create_user(username="pia", password="pw-pia-123")
    page.set_viewport_size(PHONE)
    log_in(page, demo_app.base_url, "pia", "pw-pia-123")
    heading = page.get_by_role("heading", name="Your chats")
    top = heading.bounding_box()["y"]
    assert top <= 0.2 * PHONE["height"], f"the page starts {top:.0f} px down"
    expect(page.get_by_role("note")).to_be_in_viewport()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Tasks")).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    nav.get_by_role("link", name="Tasks").click()
    expect(page.get_by_role("heading", name="Tasks", exact=True)).to_be_visible()
    # On a desktop everything shows, with no Menu button.
    page.set_viewport_size(DESKTOP)
    expect(nav.get_by_role("link", name="Chats")).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()


def scrolled(page: Page) -> int:
    return page.evaluate("window.scrollY")


def test_pages_open_at_their_top_and_a_chat_at_its_newest_message(demo_app, page):
    demo_app.create_user(username="otto", password="pw-otto-123")
    page.set_viewport_size(DESKTOP)
    log_in(page, demo_app.base_url, "otto", "pw-otto-123")
    assert scrolled(page) == 0
    expect(page.get_by_role("note")).to_be_in_viewport()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    assert scrolled(page) == 0
    start_task(page, title="Top", prompt="markdown 1")
    expect(page.locator("#task-status")).to_have_text("Completed: nothing changed", timeout=RUN_TIMEOUT)
    page.reload()
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    assert scrolled(page) == 0

    page.set_viewport_size({"width": 1280, "height": 500})
    open_new_chat(page, "markdown 1")
    expect(page.locator("article.turn .turn-status .stats")).to_be_visible(timeout=RUN_TIMEOUT)
    page.reload()
    expect(page.locator("body[data-ws=open]")).to_have_count(1)
    at_bottom = "window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 2"
    assert scrolled(page) > 0 and page.evaluate(at_bottom)


def server_folder(app) -> str:
    return str(app.data_dir)


def test_paths_are_shown_within_the_project_never_the_servers_folders(live_app, page):
    live_app.create_user(username="pat", password="pw-pat-123")
    log_in(page, live_app.base_url, "pat", "pw-pat-123")
    open_new_chat(page, "write notes.txt: from pat")
    turn = page.locator("article.turn").nth(0)
    prompt = turn.locator(".event.permission")
    expect(prompt).to_contain_text("Claude Code asks to use Write: notes.txt")
    # The call's own card stands just above its prompt (the prompt does not repeat it).
    expect(turn.locator(".event.tool_use .tool-subject").first).to_have_text("notes.txt")
    prompt.get_by_role("button", name="Allow", exact=True).click()
    expect(turn.locator(".turn-status .stats")).to_be_visible(timeout=RUN_TIMEOUT)
    expect(turn.locator(".tool-result")).to_contain_text("notes.txt")
    assert server_folder(live_app) not in page.locator("main").text_content()
    page.reload()
    assert server_folder(live_app) not in page.locator("main").text_content()

    page.goto(live_app.base_url + "/tasks/new/")
    options = page.get_by_label("Project").locator("option").all_text_contents()
    assert options[0] == "Your own folder" and not [o for o in options if "/" in o], options
    page.goto(live_app.base_url + "/tasks/")
    task_id = start_task(page, title="Paths", prompt="write paths.txt: here")
    expect(page.locator("#task-status")).to_have_text("Completed", timeout=RUN_TIMEOUT)
    facts = page.locator(".task-facts")
    expect(facts).to_contain_text("Your own folder")
    expect(facts).to_contain_text(f".worktrees/{task_id}")
    expect(page.locator("#turns .tool-subject").first).to_have_text("paths.txt")
    assert server_folder(live_app) not in page.locator("main").text_content()


def test_staff_see_whose_own_folder_a_task_works_in(live_app, page, browser):
    open_board(live_app, page, "adele")
    task_id = start_task(page, title="Adele's notes", prompt="write adele.txt: hi")
    expect(page.locator(".task-facts")).to_contain_text("Your own folder")
    staff = browser.new_context().new_page()
    live_app.create_user(username="stan", password="pw-stan-123", staff=True)
    log_in(staff, live_app.base_url, "stan", "pw-stan-123")
    staff.goto(live_app.base_url + "/tasks/")
    card = staff.locator(f"#task-{task_id}")
    expect(card).to_contain_text("adele's folder")
    staff.goto(f"{live_app.base_url}/tasks/{task_id}/")
    expect(staff.locator(".task-facts")).to_contain_text("adele's folder")
    staff.context.close()


def test_the_admin_is_the_apps_own_with_its_banner_and_icon(demo_app, page):
    demo_app.create_user(username="ann", password="pw-ann-123", staff=True)
    missing: list[str] = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    log_in(page, demo_app.base_url, "ann", "pw-ann-123")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    expect(page).to_have_title(re.compile(r"Claude Code chat"))
    expect(page.locator("#site-name")).to_have_text("Claude Code chat admin")
    expect(page.locator("body")).not_to_contain_text("Django administration")
    expect(page.get_by_role("note")).to_contain_text("Demo mode")
    icon = page.request.get(demo_app.base_url + "/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/"), icon.headers
    assert missing == []
