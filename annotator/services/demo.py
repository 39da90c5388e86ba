"""Demo reviews of invented products, written by the project itself.

Deterministic (seeded) so every fresh install shows the same data. Each review is
composed from a product, an aspect and a sentiment phrase whose class we know,
so the demo's gold labels are true by construction.
"""

import random
import re

PRODUCTS_EN = [
    "Lumo desk lamp", "Brisa travel kettle", "Kestrel running shoes", "Nimbus rain jacket",
    "Orbit wireless earbuds", "Tala yoga mat", "Quill fountain pen", "Fjord water bottle",
    "Pico phone stand", "Sable leather wallet", "Vanta hoodie", "Cirrus pillow",
]
PRODUCTS_ZH = ["星河台灯", "青竹保温杯", "云朵枕头", "疾风跑鞋", "晨光耳机", "墨韵钢笔", "山岚背包", "暖阳围巾"]

ASPECTS_EN = ["the battery", "the fit", "the material", "delivery", "the price", "the sound", "the size", "packaging"]
ASPECTS_ZH = ["质量", "物流", "做工", "尺码", "价格", "音质", "包装", "颜色"]

PHRASES = {
    "negative": {
        "en": [
            "{p}: {a} was a letdown, it broke after two days.",
            "Really disappointed with {p}. {a} is awful and support never answered.",
            "Would not buy {p} again — {a} feels cheap and it smells weird.",
            "{p} arrived scratched and {a} is nothing like the photos. Returning it.",
            "Waste of money. {a} on the {p} stopped working within a week 😡",
        ],
        "zh": [
            "{p}的{a}太差了，用了两天就坏了。",
            "非常失望，{p}{a}和图片完全不一样，已申请退货。",
            "{p}{a}很糟糕，客服也不回复 😞",
            "不推荐{p}，{a}一般还很贵。",
        ],
    },
    "neutral": {
        "en": [
            "{p} is okay. {a} is average, nothing special.",
            "{p} does what it says. {a} could be better but fine for the price.",
            "Got the {p} yesterday, {a} is as described. Too early to say more.",
            "{p}: {a} is fine, colour slightly different from the picture.",
        ],
        "zh": [
            "{p}还行，{a}中规中矩。",
            "{p}收到了，{a}和描述一致，用几天再看。",
            "{p}{a}一般般，对得起这个价格。",
        ],
    },
    "positive": {
        "en": [
            "Love the {p}! {a} is excellent and it arrived early.",
            "{p} exceeded my expectations — {a} is superb. Five stars ⭐⭐⭐⭐⭐",
            "Great value: {a} of the {p} feels premium. Buying another as a gift.",
            "Best purchase this year. {p} works perfectly and {a} is spot on 😍",
            "{p} is fantastic, {a} is better than brands twice the price.",
        ],
        "zh": [
            "{p}太好用了，{a}超出预期！",
            "{p}{a}很棒，物流也快，五星好评 👍",
            "非常满意{p}，{a}一流，还会回购。",
            "{p}性价比很高，{a}做得很好。",
        ],
    },
}

SEARCH_QUERIES = ["waterproof jacket women", "降噪耳机 推荐", "yoga mat non slip", "保温杯 大容量"]


def demo_rows(n: int = 360, gold_share: float = 0.2, seed: int = 7) -> list[dict]:
    """Rows shaped like an import file: text, label, id, product, lang, split."""
    rng = random.Random(seed)
    rows, seen = [], set()
    labels = list(PHRASES)
    while len(rows) < n:
        label = rng.choice(labels)
        lang = "zh" if rng.random() < 0.35 else "en"
        product = rng.choice(PRODUCTS_ZH if lang == "zh" else PRODUCTS_EN)
        aspect = rng.choice(ASPECTS_ZH if lang == "zh" else ASPECTS_EN)
        text = rng.choice(PHRASES[label][lang]).format(p=product, a=aspect)
        if lang == "en":
            text = re.sub(r"(^|[.!?—:] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
        if text in seen:
            continue
        seen.add(text)
        rows.append(
            {
                "id": f"demo-{len(rows) + 1:04d}",
                "text": text,
                "label": label,
                "product": product,
                "lang": lang,
                "split": "gold" if rng.random() < gold_share else "pool",
            }
        )
    return rows
