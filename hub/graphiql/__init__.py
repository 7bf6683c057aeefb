"""GraphiQL without the internet: strawberry's page, its assets served by the hub itself."""
