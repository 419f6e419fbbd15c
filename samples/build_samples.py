"""Regenerate the bundled sample corpus: `python samples/build_samples.py`.

Six short documents on distinct topics, one per supported format, so a query about one
topic should rank its document first (see QUERIES.md). `chess_openings.txt` carries fake
personal data (name, e-mail, phone) for the redaction demo. Output is deterministic.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

VOLCANO_PAGES = [
    """# How Volcanoes Work

A volcano is an opening in the crust of a planet through which molten rock, gas and ash
escape from below. On Earth most volcanoes sit along the boundaries of tectonic plates.
Where one plate dives beneath another in a subduction zone, water carried down with the
sinking slab lowers the melting point of the mantle above it, and the resulting magma
rises because it is less dense than the solid rock around it.

# Why Volcanoes Erupt

Magma collects in a chamber a few kilometres below the surface. As it rises and the
pressure on it falls, dissolved gases such as water vapour, carbon dioxide and sulphur
dioxide come out of solution, much like bubbles in a freshly opened bottle of soda.
When the gas pressure exceeds the strength of the overlying rock, the volcano erupts.
Runny basaltic magma lets gas escape gently, while sticky rhyolitic magma traps it and
tends to explode.

# Hotspots

Not every volcano lies on a plate boundary. Hawaii sits above a hotspot, a plume of hot
mantle rising from deep inside the Earth. As the Pacific plate drifts over the plume, a
chain of islands forms, each one older and more eroded than the last.""",
    """# Volcanic Hazards

The most dangerous volcanic hazard is the pyroclastic flow: an avalanche of hot ash,
pumice and gas that races down the slope at more than one hundred kilometres per hour
and can reach several hundred degrees Celsius. In the year 79 a pyroclastic flow from
Mount Vesuvius buried the Roman towns of Pompeii and Herculaneum.

Lahars are mudflows of volcanic debris and water, often triggered when an eruption melts
a summit glacier. Ash clouds ground aircraft because the glassy particles melt inside
jet engines.

# Monitoring and Forecasting

Volcanologists watch for swarms of small earthquakes, swelling of the ground measured by
satellite radar and GPS, and changes in the sulphur dioxide coming from vents. None of
these signals gives an exact date, but together they allow authorities to raise alert
levels and evacuate towns before a large eruption.""",
]

HONEYBEE_TITLE = "The Life of Honeybees"
HONEYBEE_PARAGRAPHS = [
    "A honeybee colony is a superorganism of up to sixty thousand workers, a few hundred "
    "drones and a single queen. The queen lays as many as two thousand eggs a day in "
    "summer, while sterile female workers do every other job in the hive.",
    "# Division of Labour",
    "A worker's job changes with her age. Young bees clean cells and feed larvae with "
    "royal jelly from glands in their heads. Middle-aged bees build wax comb, process "
    "nectar and guard the entrance. In the last weeks of their lives they become foragers.",
    "# The Waggle Dance",
    "Foragers tell their sisters where to find flowers with the waggle dance, decoded by "
    "Karl von Frisch. On the vertical comb the angle of the waggle run relative to "
    "straight up gives the direction of the food relative to the sun, and the duration of "
    "the waggle run tells the distance.",
    "# From Nectar to Honey",
    "Nectar is mostly water. Workers add the enzyme invertase, which splits sucrose into "
    "glucose and fructose, and fan their wings over open cells until the water content "
    "falls below about eighteen percent. Then they cap the cell with wax.",
    "# Swarming",
    "In late spring a crowded colony raises new queens and the old queen leaves with about "
    "half of the workers. The swarm hangs from a branch while scouts search for a new "
    "cavity and debate candidate sites with dances until they reach a consensus.",
]

PRINTING_TITLE = "A Short History of the Printing Press"
PRINTING_PARAGRAPHS = [
    "Before printing, every book in Europe was copied by hand, usually by monks in a "
    "monastery scriptorium, and a single Bible could take a scribe more than a year.",
    "# Movable Type in East Asia",
    "Printing from carved wooden blocks was common in China by the Tang dynasty. Around "
    "1040 the artisan Bi Sheng made movable type from baked clay, and in 1377 Korean monks "
    "printed the Jikji, the oldest surviving book made with movable metal type.",
    "# Gutenberg's Press",
    "In Mainz around 1450 the goldsmith Johannes Gutenberg combined several inventions: a "
    "hand mould for casting uniform metal type from an alloy of lead, tin and antimony, an "
    "oil-based ink that clung to metal, and a screw press adapted from wine making. His "
    "42-line Bible, finished about 1455, showed that a press could match the beauty of a "
    "manuscript.",
    "# The Spread of Print",
    "Within fifty years presses operated in more than two hundred European cities and "
    "perhaps twenty million books had been printed. Cheap pamphlets carried the ideas of "
    "the Reformation, standardised spelling, and made scientific results easy to share "
    "and check.",
    "# Steam and Rotary Presses",
    "In 1814 The Times of London was printed on a steam-powered press built by Friedrich "
    "Koenig, and later rotary presses fed from continuous rolls of paper printed tens of "
    "thousands of newspapers an hour.",
]

SOURDOUGH_TITLE = "Sourdough Baking at Home"
SOURDOUGH_MD_BODY = """\
Sourdough bread rises without commercial yeast. Instead a **starter**, a culture of wild
yeasts and lactic acid bacteria living in flour and water, leavens the dough and gives it
a tangy flavour.

## Keeping a Starter Alive

- Feed it once a day at room temperature: discard all but 50 g, then add 50 g flour and
  50 g water.
- A healthy starter doubles within four to eight hours of a feeding and smells pleasantly
  sour, like yoghurt.
- Store it in the fridge between bakes and feed it weekly; a layer of grey liquid
  (called *hooch*) means it is hungry, not dead.

## A Basic Loaf

1. Mix 500 g bread flour with 350 g water and rest for an hour (the *autolyse*).
2. Add 100 g active starter and 10 g salt.
3. Over the next four hours give the dough a set of stretch and folds every thirty
   minutes during bulk fermentation.
4. Shape a tight boule, place it in a floured banneton and proof it overnight in the fridge.
5. Bake in a preheated Dutch oven at 250 °C, 20 minutes with the lid on and 25 minutes
   with it off.

## Reading the Crumb

An open, glossy crumb with irregular holes means good fermentation. A dense, gummy loaf
is usually underproofed; a flat loaf that spreads is often overproofed. See the
[baker's percentage](https://en.wikipedia.org/wiki/Baker_percentage) article for how
recipes scale.
"""

LIGHTHOUSE_SLIDES = [
    (
        "Lighthouse Engineering",
        "How towers, lenses and lamps kept ships off the rocks\n"
        "The story runs from the Pharos of Alexandria to automated LED beacons",
    ),
    (
        "Building on Wave-Swept Rocks",
        "John Smeaton's Eddystone tower of 1759 used dovetailed granite blocks\n"
        "Its curved base, shaped like an oak trunk, spreads the force of the waves\n"
        "Hydraulic lime that sets under water bonded the stones",
    ),
    (
        "The Fresnel Lens",
        "Augustin Fresnel's 1822 lens uses concentric rings of glass prisms\n"
        "It bends light from a single lamp into a horizontal beam\n"
        "A first-order Fresnel lens is visible more than twenty nautical miles away",
    ),
    (
        "Light Characteristics",
        "Each lighthouse flashes a unique pattern so sailors can identify it at night\n"
        "A rotating lens on a bath of mercury creates the flashes\n"
        "Charts list the pattern, for example two white flashes every ten seconds",
    ),
    (
        "Automation",
        "Electric lamps replaced oil and paraffin vapour burners\n"
        "Most keepers left by the end of the twentieth century\n"
        "Today solar-powered LED lanterns and GPS have reduced lighthouses to backups",
    ),
]

CHESS_TEXT = """Chess Openings for Club Players

The opening is the first phase of a chess game, usually the first ten to fifteen moves.
Its goals are to control the centre, develop the knights and bishops quickly, and castle
the king into safety before the middlegame begins.

The Italian Game

After 1. e4 e5 2. Nf3 Nc6 3. Bc4 White aims the bishop at the f7 square, the weakest point
in Black's camp. It is one of the oldest recorded openings and leads to open positions
with quick piece play.

The Sicilian Defence

Black answers 1. e4 with 1... c5, fighting for the d4 square from the side instead of
copying White's central pawn. The resulting positions are unbalanced, which is why the
Sicilian is the most popular reply to 1. e4 among players who play for a win with Black.

The Queen's Gambit

After 1. d4 d5 2. c4 White offers a pawn to lure Black's d-pawn away from the centre.
Black can accept the gambit or decline it with 2... e6, building a solid pawn chain.

Club Tournament

The spring rapid tournament is played on Thursday evenings at the community library. To
register, contact the organiser Jane Doe at jane.doe@example.com or call +1 415 555 0132
before the end of March. Entry is free for members.
"""


def build(out_dir: Path) -> list[Path]:
    """Write the six sample files into `out_dir` and return their paths."""
    from tests.utils.corpus import make_docx, make_html, make_pdf, make_pptx

    # Source text above is wrapped for readability; re-flow paragraphs for the PDF.
    def reflow(page: str) -> str:
        return "\n\n".join(" ".join(p.split()) for p in page.split("\n\n"))

    files = {
        "volcanoes.pdf": make_pdf([reflow(p) for p in VOLCANO_PAGES]),
        "honeybees.docx": make_docx(HONEYBEE_TITLE, HONEYBEE_PARAGRAPHS),
        "printing_press.html": make_html(PRINTING_TITLE, PRINTING_PARAGRAPHS),
        "sourdough.md": f"# {SOURDOUGH_TITLE}\n\n{SOURDOUGH_MD_BODY}".encode(),
        "lighthouses.pptx": make_pptx(LIGHTHOUSE_SLIDES),
        "chess_openings.txt": CHESS_TEXT.encode(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = out_dir / name
        path.write_bytes(data)
        paths.append(path)
    return paths


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))  # so `tests.utils` imports from a checkout
    for written in build(HERE / "corpus"):
        print(written.relative_to(HERE.parent))
