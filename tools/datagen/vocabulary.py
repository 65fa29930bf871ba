"""Fixed word lists the generator draws from. Changing them changes every data set."""

from __future__ import annotations

# Country -> cities. Deliberately full of non-ASCII names (and an apostrophe): a backup
# must carry UTF-8 text byte for byte.
PLACES: dict[str, tuple[str, ...]] = {
    "Brazil": ("São Paulo", "Rio de Janeiro", "Belo Horizonte", "Curitiba"),
    "Canada": ("Montréal", "Québec", "Toronto", "Vancouver"),
    "Côte d'Ivoire": ("Abidjan", "Yamoussoukro"),
    "France": ("Paris", "Besançon", "Nîmes", "Lyon"),
    "Germany": ("München", "Köln", "Berlin", "Düsseldorf"),
    "Greece": ("Αθήνα", "Θεσσαλονίκη"),
    "Iceland": ("Reykjavík", "Akureyri"),
    "India": ("Mumbai", "Bengaluru", "Chennai"),
    "Japan": ("東京", "大阪", "Sapporo"),
    "Mexico": ("Ciudad de México", "Querétaro", "Mérida"),
    "Nigeria": ("Lagos", "Abuja", "Ibadan"),
    "Poland": ("Kraków", "Łódź", "Gdańsk", "Warszawa"),
    "Spain": ("A Coruña", "Málaga", "Córdoba", "Madrid"),
    "Sweden": ("Göteborg", "Malmö", "Stockholm"),
    "Turkey": ("İstanbul", "Ankara", "İzmir"),
    "United States": ("Boston", "Chicago", "Portland", "Austin", "Denver"),
}

CATEGORIES = (
    "Action", "Adventure", "Animation", "Comedy", "Crime", "Documentary", "Drama",
    "Family", "Fantasy", "Film Noir", "Horror", "Musical", "Mystery", "Romance",
    "Science Fiction", "Western",
)

FIRST_NAMES = (
    "Ada", "Aiko", "Amara", "Ana", "Björn", "Carlos", "Chloé", "Dmitri", "Elena", "Emeka",
    "Farah", "François", "Grace", "Hannah", "Hiroshi", "Ines", "Ivan", "Jamal", "José",
    "Kai", "Léa", "Liam", "Łukasz", "Maya", "Mateus", "Mei", "Noah", "Ngozi", "Olga",
    "Omar", "Priya", "Rafael", "Sofia", "Søren", "Tomás", "Uma", "Victor", "Yara",
    "Zoë", "Zeynep",
)

LAST_NAMES = (
    "Abara", "Andersen", "Bianchi", "Costa", "D'Angelo", "Dubois", "Eriksson", "Fischer",
    "García", "Gómez", "Hansen", "Ivanova", "Jensen", "Kowalski", "Lefèvre", "Li", "Lima",
    "Martin", "Müller", "Nakamura", "Novak", "Núñez", "O'Brien", "Okafor", "Øvergaard",
    "Patel", "Petrov", "Quinn", "Rossi", "Santos", "Schmidt", "Silva", "Tanaka", "Wójcik",
    "Yilmaz", "Zhang",
)

TITLE_ADJECTIVES = (
    "Amber", "Bitter", "Broken", "Burning", "Crimson", "Crystal", "Dancing", "Distant",
    "Electric", "Empty", "Fading", "Frozen", "Gentle", "Golden", "Hidden", "Hollow",
    "Iron", "Last", "Lonely", "Lost", "Midnight", "Neon", "Northern", "Paper", "Quiet",
    "Restless", "Rusty", "Savage", "Secret", "Silent", "Silver", "Sleeping", "Stolen",
    "Sudden", "Velvet", "Wandering", "Wicked", "Wild", "Winter", "Wooden",
)

TITLE_NOUNS = (
    "Alibi", "Anthem", "Bridge", "Carnival", "Cathedral", "Circus", "Coast", "Compass",
    "Crown", "Desert", "Echo", "Empire", "Engine", "Frontier", "Garden", "Harbor",
    "Horizon", "Island", "Journey", "Kingdom", "Lantern", "Letter", "Machine", "Mirror",
    "Orchard", "Paradise", "Pilgrim", "Planet", "River", "Road", "Saint", "Shadow",
    "Signal", "Station", "Storm", "Summer", "Tower", "Voyage", "Witness", "Wolf",
)

STORY_FORMS = (
    "Chronicle", "Comedy", "Documentary", "Drama", "Epic", "Fable", "Mystery", "Portrait",
    "Saga", "Thriller",
)

STORY_ROLES = (
    "Astronaut", "Baker", "Boxer", "Chef", "Cowboy", "Detective", "Diplomat", "Dragon",
    "Explorer", "Forger", "Lighthouse Keeper", "Magician", "Monk", "Pianist", "Pilot",
    "Robot", "Sailor", "Smuggler", "Teacher", "Twin",
)

STORY_GOALS = (
    "cross a frozen lake", "escape a flooded museum", "find a missing map",
    "outwit a corrupt mayor", "rebuild a broken radio", "solve a riddle",
    "survive a long winter", "win a dance contest", "deliver a secret letter",
    "tame a wild horse",
)

STORY_PLACES = (
    "in a Haunted Hotel", "in Ancient Rome", "on a Night Train", "at the Bottom of the Sea",
    "in a Small Village", "on the Moon", "in a Jazz Club", "in the Amazon",
    "in an Abandoned Factory", "at a Mountain Monastery",
)

FEATURES = ("Trailers", "Commentaries", "Deleted Scenes", "Behind the Scenes")

LANGUAGES = ("en", "pt-BR", "fr", "de", "es", "ja", "pl")

RATINGS = ("G", "PG", "PG-13", "R", "NC-17")

STREETS = (
    "Acacia", "Baker", "Cedar", "Harbour", "Hillside", "Lake", "Maple", "Market", "Mill",
    "Oak", "Orchard", "Park", "Rua Augusta", "Station", "Sunset", "Königsallee", "Willow",
)

STREET_KINDS = ("Street", "Avenue", "Road", "Lane", "Way")

STORE_BRANDS = ("Reel Life", "Rewind", "Frame by Frame", "Kino Corner", "Popcorn & Co.")
